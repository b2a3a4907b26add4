"""Where derived records go: local files, the audit trail, Alertmanager."""
