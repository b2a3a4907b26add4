"""b2b-otel's benchmarks: each scenario against its plain OpenTelemetry baseline (``make bench``).

``python -m benchmarks`` runs every scenario, each in a fresh interpreter, prints the table and
writes ``benchmarks/results.json``; ``docs/performance.md`` says what each scenario and target means.
"""
