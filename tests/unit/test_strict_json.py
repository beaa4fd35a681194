"""Answers under ``format`` are strict JSON: raw control characters inside strings are escaped as
the text passes, piece by piece, whatever the cuts between pieces."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.jsonutil import StrictJsonText

#: Strings with every kind of character a model may write, control characters included.
TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=12)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
_ESCAPE = re.compile(r"(\\\\)|\\u00([01][0-9a-f])|\\([ntrbf])")
_RAW = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def as_a_model_writes_it(value: Any) -> str:
    """JSON of ``value`` with the control characters in its strings written raw, as a
    grammar-constrained model does (vLLM's structured outputs let them through)."""

    def raw(m: re.Match[str]) -> str:
        if m.group(1):
            return m.group(1)
        if m.group(2):
            return chr(int(m.group(2), 16))
        return _RAW[m.group(3)]

    return _ESCAPE.sub(raw, json.dumps(value, ensure_ascii=False))


@given(VALUES, st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_any_json_cut_anywhere_comes_out_strict(value: Any, cuts: list[int]) -> None:
    text = as_a_model_writes_it(value)
    points = sorted({c % (len(text) + 1) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    strict = StrictJsonText()
    out = "".join(strict.feed(p) for p in pieces)
    assert json.loads(out, strict=True) == value


def test_what_is_already_strict_is_left_alone() -> None:
    strict = StrictJsonText()
    text = '{"a": "x\\n\\"y\\\\", "b": [1, 2.5, null], "c": "\\u0000"}'
    assert strict.feed(text) == text


def test_control_characters_outside_strings_are_not_touched() -> None:
    assert StrictJsonText().feed('{\n"a":\t1}') == '{\n"a":\t1}'


def test_the_raw_form_really_is_what_strict_parsers_refuse() -> None:
    """The premise: a raw control character in a string breaks json.loads."""
    raw = as_a_model_writes_it({"name": "a\x00b"})
    assert "\x00" in raw
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
