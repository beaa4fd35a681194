"""Build a tiny random-weight Llama chat model, fully offline and deterministically.

Usage (with the vLLM venv, which has torch, transformers and tokenizers)::

    .venv-vllm/bin/python scripts/make_tiny_model.py .cache/models/tiny-llm
    .venv-vllm/bin/python scripts/make_tiny_model.py --thinking .cache/models/tiny-think

The model is noise (random weights) but has everything vLLM's OpenAI server needs to exercise
real code paths: a byte-level BPE tokenizer trained on the interpreter's own stdlib sources, a
ChatML chat template that renders tools (Hermes / Qwen style), assistant tool calls and tool
results, and the tokens ``<tool_call>``, ``</tool_call>``, ``<think>``, ``</think>`` in the
vocabulary so that ``--tool-call-parser hermes`` and ``--reasoning-parser qwen3`` can be enabled.

The default template ignores ``enable_thinking`` (a Qwen2.5-like model, without thinking);
``--thinking`` writes one that honours it (Qwen3 style: thinking unless the switch is off), so
the adapter finds the ``thinking`` capability on one and not on the other. Weights and
tokenizer are the same for both.
"""

from __future__ import annotations

import importlib
import json
import sys
import sysconfig
from pathlib import Path
from typing import Any

HIDDEN_SIZE = 128
INTERMEDIATE_SIZE = 256
NUM_LAYERS = 2
NUM_HEADS = 4  # head size 32: the CPU attention backend needs >= 32
NUM_KV_HEADS = 2
VOCAB_SIZE = 512
MAX_POSITIONS = 2048
SEED = 1234

BOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|endoftext|>"
EOS_TOKEN = "<|im_end|>"
# Special tokens (skipped when detokenizing with skip_special_tokens).
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Added, non-special tokens, as in Qwen2.5 / Qwen3: kept in the text so that the tool-call and
# reasoning parsers (which look these up in the vocabulary) can see them.
ADDED_TOKENS = [
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
]

# A trimmed Qwen2.5 / Qwen3 ChatML template.
CHAT_TEMPLATE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages and messages[0].role == 'system' %}"
    "{{- messages[0].content + '\\n\\n' }}"
    "{%- endif %}"
    '{{- "# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n'
    'You are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}'
    "{%- for tool in tools %}"
    "{{- '\\n' }}{{- tool | tojson }}"
    "{%- endfor %}"
    '{{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and '
    "arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n"
    '{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call>'
    '<|im_end|>\\n" }}'
    "{%- elif messages and messages[0].role == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- set content = message.content if message.content is string else '' %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant' }}"
    "{%- if message.reasoning_content is defined and message.reasoning_content is string"
    " and message.reasoning_content %}"
    "{{- '\\n<think>\\n' + message.reasoning_content.strip('\\n') + '\\n</think>\\n' }}"
    "{%- endif %}"
    "{%- if content %}{{- '\\n' + content }}{%- endif %}"
    "{%- if message.tool_calls is defined and message.tool_calls %}"
    "{%- for tool_call in message.tool_calls %}"
    "{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}"
    '{{- \'\\n<tool_call>\\n{"name": "\' }}{{- tool_call.name }}{{- \'", "arguments": \' }}'
    "{%- if tool_call.arguments is string %}{{- tool_call.arguments }}"
    "{%- else %}{{- tool_call.arguments | tojson }}{%- endif %}"
    "{{- '}\\n</tool_call>' }}"
    "{%- endfor %}"
    "{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}"
    "{{- '<|im_start|>user' }}"
    "{%- endif %}"
    "{{- '\\n<tool_response>\\n' + content + '\\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)
# Qwen3's switch: a closed, empty think block when thinking is off.
THINKING_SWITCH = (
    "{%- if add_generation_prompt and enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
)

# Stdlib modules used as the tokenizer's training text: fixed list, sorted, so the result
# depends only on the interpreter version (pinned by the venv), not on what else is installed.
CORPUS_MODULES = [
    "argparse.py",
    "ast.py",
    "collections/__init__.py",
    "dataclasses.py",
    "datetime.py",
    "email/message.py",
    "enum.py",
    "functools.py",
    "inspect.py",
    "json/decoder.py",
    "json/encoder.py",
    "pathlib.py",
    "shutil.py",
    "subprocess.py",
    "textwrap.py",
    "typing.py",
]


def corpus_lines() -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    lines: list[str] = []
    for rel in CORPUS_MODULES:
        path = stdlib / rel
        if path.is_file():
            lines.extend(path.read_text(encoding="utf-8", errors="replace").splitlines())
    # Some chat-shaped text so JSON and the template's words are cheap to encode.
    lines.extend(
        [
            '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}',
            "You are a helpful assistant. Why is the sky blue? The answer is 42.",
            "# Tools You may call one or more functions to assist with the user query.",
        ]
        * 50
    )
    if len(lines) < 1000:
        raise SystemExit(f"not enough training text found under {stdlib}")
    return lines


def build_tokenizer(out_dir: Path, *, thinking: bool) -> dict[str, int]:
    tk: Any = importlib.import_module("tokenizers")
    trainers: Any = importlib.import_module("tokenizers.trainers")
    transformers: Any = importlib.import_module("transformers")
    pre_tokenizers = tk.pre_tokenizers

    tok = tk.Tokenizer(tk.models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk.decoders.ByteLevel()
    tok.post_processor = tk.processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(ADDED_TOKENS),
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    tok.add_tokens([tk.AddedToken(t, special=False, normalized=False) for t in ADDED_TOKENS])
    if tok.get_vocab_size() > VOCAB_SIZE:
        raise SystemExit(f"tokenizer too large: {tok.get_vocab_size()} > {VOCAB_SIZE}")

    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=None,
        model_max_length=MAX_POSITIONS,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE + (THINKING_SWITCH if thinking else "")
    fast.save_pretrained(str(out_dir))
    vocab: dict[str, int] = fast.get_vocab()
    return vocab


def build_model(out_dir: Path, vocab: dict[str, int]) -> None:
    torch: Any = importlib.import_module("torch")
    transformers: Any = importlib.import_module("transformers")

    torch.manual_seed(SEED)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=INTERMEDIATE_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_KV_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=vocab[BOS_TOKEN],
        eos_token_id=vocab[EOS_TOKEN],
        pad_token_id=vocab[PAD_TOKEN],
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    # Written by hand: no max_length / max_new_tokens cap, no sampling defaults.
    generation_config = {
        "bos_token_id": vocab[BOS_TOKEN],
        "eos_token_id": vocab[EOS_TOKEN],
        "pad_token_id": vocab[PAD_TOKEN],
    }
    (out_dir / "generation_config.json").write_text(
        json.dumps(generation_config, indent=2) + "\n", encoding="utf-8"
    )


def smoke_test(out_dir: Path, *, thinking: bool) -> None:
    transformers: Any = importlib.import_module("transformers")

    tok = transformers.AutoTokenizer.from_pretrained(str(out_dir))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                }
            ],
        },
        {"role": "tool", "content": '{"temp": 21}'},
        {"role": "tool", "content": '{"wind": 3}'},
    ]
    for kwargs in ({}, {"enable_thinking": False}, {"enable_thinking": True}):
        text = tok.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=True, **kwargs
        )
        assert isinstance(text, str)
        assert "<tools>" in text and "<tool_call>" in text and "<tool_response>" in text, text
        switched_off = thinking and kwargs.get("enable_thinking") is False
        assert text.endswith("</think>\n\n") == switched_off, text
    for token in [*ADDED_TOKENS, EOS_TOKEN]:
        ids = tok.encode(token, add_special_tokens=False)
        assert len(ids) == 1, (token, ids)


def main(argv: list[str]) -> int:
    args = argv[1:]
    thinking = "--thinking" in args
    args = [a for a in args if a != "--thinking"]
    if len(args) != 1:
        print(f"usage: {argv[0]} [--thinking] OUTPUT_DIR", file=sys.stderr)
        return 2
    out_dir = Path(args[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = build_tokenizer(out_dir, thinking=thinking)
    build_model(out_dir, vocab)
    smoke_test(out_dir, thinking=thinking)
    size = sum(p.stat().st_size for p in out_dir.iterdir() if p.is_file())
    print(f"tiny model written to {out_dir} ({size / 1e6:.1f} MB, vocab {len(vocab)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
