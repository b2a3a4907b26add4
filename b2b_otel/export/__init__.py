"""Exporter wrappers: export health, scrubbing once before the fan-out to every exporter."""
