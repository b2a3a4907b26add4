"""Where derived records go besides OTLP: the local log files and Alertmanager (``derive.sink.Sink``)."""
