"""Benchmarks of optibridge against the sandboxes on 127.0.0.1: ``python -m bench NAME``."""
