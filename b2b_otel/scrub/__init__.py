"""Scrubbing: sensitive data found in telemetry is replaced by ``[REDACTED:<pattern>]`` before export."""

from __future__ import annotations

from .scrubber import PATTERN_NAMES, Finding, Report, Scrubber, luhn_valid, marker

__all__ = ["PATTERN_NAMES", "Finding", "Report", "Scrubber", "luhn_valid", "marker"]
