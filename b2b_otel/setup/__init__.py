"""The composition root: settings, ``instrument()``, the ``Telemetry`` handle, and what they build."""
