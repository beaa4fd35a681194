"""Settings from environment and flags; wrong values fail with one clear line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from adapter.cli import FLAGS, build_parser, export_settings, load_settings
from adapter.config import Settings, parse_aliases

ROOT = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    s = Settings()
    assert (s.host, s.port, s.vllm_url) == ("127.0.0.1", 11434, "http://localhost:8000")
    assert s.vllm_api_key is None and s.model_aliases == {}


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADAPTER_PORT", "9999")
    monkeypatch.setenv("VLLM_URL", "http://vllm:8000/")
    monkeypatch.setenv("VLLM_API_KEY", "k")
    monkeypatch.setenv("MODEL_ALIASES", "llama2:7b=meta-llama/Llama-2-7b-hf, llama3.2=llm")
    s = Settings()
    assert s.port == 9999
    assert s.vllm_url == "http://vllm:8000"
    assert s.vllm_api_key is not None and s.vllm_api_key.get_secret_value() == "k"
    assert s.model_aliases == {"llama2:7b": "meta-llama/Llama-2-7b-hf", "llama3.2": "llm"}


def test_flag_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADAPTER_PORT", "9999")
    monkeypatch.setenv("VLLM_URL", "http://env:1")
    s = load_settings(["--port", "1234", "--vllm-url", "http://flag:2", "--log-level", "DEBUG"])
    assert (s.port, s.vllm_url, s.log_level) == (1234, "http://flag:2", "debug")


@pytest.mark.parametrize("raw", ["novalue", "=x", "a="])
def test_bad_aliases(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_aliases(raw)


@pytest.mark.parametrize(
    ("args", "env_name"),
    [
        (["--port", "http"], "ADAPTER_PORT"),
        (["--port", "70000"], "ADAPTER_PORT"),
        (["--vllm-url", "vllm:8000"], "VLLM_URL"),
        (["--log-level", "loud"], "ADAPTER_LOG_LEVEL"),
        (["--workers", "0"], "ADAPTER_WORKERS"),
        (["--model-aliases", "oops"], "MODEL_ALIASES"),
    ],
)
def test_wrong_value_fails_at_start_with_one_line(args: list[str], env_name: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "adapter", *args], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("vllm-adapter: invalid configuration: ")
    assert env_name in lines[0]
    assert "Traceback" not in proc.stderr


def test_only_the_documented_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field's own name is no environment variable: PORT, HOST and the like mean other
    things on many machines (a platform's port, a shell's host name)."""
    for name, value in [
        ("PORT", "1"),
        ("HOST", "0.0.0.0"),
        ("WORKERS", "9"),
        ("LOG_LEVEL", "debug"),
    ]:
        monkeypatch.setenv(name, value)
    s = Settings()
    assert (s.port, s.host, s.workers, s.log_level) == (11434, "127.0.0.1", 1, "info")
    monkeypatch.setenv("ADAPTER_HOST", "0.0.0.0")
    assert Settings().host == "0.0.0.0"
    assert Settings(host="::1").host == "::1"  # the flags and tests give field names


def test_the_help_says_each_flags_variable_and_default() -> None:
    """The help is made from Settings, so a changed default shows there at once."""
    text = " ".join(build_parser().format_help().split())
    for field in FLAGS:
        info = Settings.model_fields[field]
        assert f"({Settings.env_names()[field]}" in text
        default = info.get_default(call_default_factory=True)
        if default not in (None, "", (), {}):
            assert f"default {default})" in text, field
    assert "(ADAPTER_PORT, default 11434)" in text


def test_exported_settings_read_back_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers read the settings the supervisor resolved from flags and environment."""
    monkeypatch.setenv("VLLM_API_KEY", "secret")
    given = load_settings(
        ["--port", "1234", "--model-aliases", "a=b", "--vllm-url", "http://x:1,http://y:2"]
    )
    with monkeypatch.context() as m:
        m.setattr("os.environ", dict(os.environ))
        export_settings(given)
        assert os.environ["VLLM_API_KEY"] == "secret"  # left as it was, never '**********'
        again = Settings()
    assert again.model_dump() == given.model_dump()


def _table(path: str) -> dict[str, tuple[str, str]]:
    """The configuration table of a document: each variable's flag and default."""
    rows = {}
    for line in (ROOT / path).read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"`[A-Z_]+`", cells[1]):
            rows[cells[1].strip("`")] = (cells[0].strip("`"), cells[2].strip("`"))
    return rows


@pytest.mark.parametrize("path", ["README.md", "docs/configuration.md"])
def test_the_configuration_tables_say_every_setting_as_it_is(path: str) -> None:
    """One row a setting, in the README (one line each) and in docs/configuration.md (in
    full): its variable, the flag that sets it (when one does) and its default."""
    rows = _table(path)
    names = Settings.env_names()
    assert sorted(rows) == sorted(names.values())
    flags = {a.dest: a.option_strings[0] for a in build_parser()._actions if a.dest in FLAGS}
    for field, env in names.items():
        flag, default = rows[env]
        assert flag == flags.get(field, ""), env
        value = Settings.model_fields[field].get_default(call_default_factory=True)
        if value in (None, (), {}):
            assert default in ("unset", "empty"), env
        elif isinstance(value, bool):
            assert default == str(value).lower(), env
        elif isinstance(value, tuple):
            assert default == ",".join(value), env
        else:
            assert default in (str(value), f"{value:g}" if isinstance(value, float) else ""), env
