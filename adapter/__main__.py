"""``python -m adapter``: the same as the ``vllm-adapter`` command."""

from adapter.cli import main

main()
