"""Ollama's wire format: request schemas, answer shapes, model descriptions, names, durations.

The one place that knows Ollama's field names; it imports nothing else of the adapter but
``errors`` and ``jsonutil``.
"""
