"""Scrubbing: sensitive data found in telemetry is replaced by ``[REDACTED:<pattern>]`` before export."""

from __future__ import annotations

from .patterns import luhn_valid, names_secret
from .scrubber import PATTERN_NAMES, Finding, Report, Scrubber, marker

__all__ = ["PATTERN_NAMES", "Finding", "Report", "Scrubber", "luhn_valid", "marker", "names_secret"]
