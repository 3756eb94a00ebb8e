"""Benchmark and evaluation harnesses of this app: run by its management commands, never in a request."""
