"""Judging and scrubbing between the application and the exporters."""
