"""Internals of b2b_otel; the public API is re-exported from ``b2b_otel``."""
