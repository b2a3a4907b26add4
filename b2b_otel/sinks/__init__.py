"""Where derived records go besides OTLP: the local log files and Alertmanager (implementations of derive.sink.Sink)."""
