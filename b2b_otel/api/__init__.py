"""The instrumentation API: span helpers for agents, tools, workflows, steps and memory, and their metrics."""
