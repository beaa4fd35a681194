"""Benchmark tooling: a fake vLLM upstream, a checking load generator and the matrix runner."""
