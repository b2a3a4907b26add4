"""Example applications instrumented with b2b_otel; ``examples.b2bvalue`` is the ``make demo`` workload."""
