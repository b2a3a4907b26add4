"""The derivation pipeline: finished spans judged by the rules, firings turned into derived records."""
