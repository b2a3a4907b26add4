"""The tamper-evident audit trail: the chain's format, the writer, the verifier and the record path."""
