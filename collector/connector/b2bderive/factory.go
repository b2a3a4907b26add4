// Package b2bderive is the b2bderive connector (traces -> logs): it judges every span against the
// rules file the Python layer reads, fleet-wide, and emits a derived log record for each firing
// (README.md). The rules file is read by internal/rules, judged by internal/engine; the names it
// writes come from internal/semconv, generated from the registry in docs/semconv.
package b2bderive // import "github.com/b2b-otel/b2b-otel/collector/connector/b2bderive"

//go:generate go -C ../../tools tool mdatagen ../connector/b2bderive/metadata.yaml

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/engine"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/metadata"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/rules"
)

// NewFactory returns the factory of the b2bderive connector (traces -> logs).
func NewFactory() connector.Factory {
	return connector.NewFactory(
		metadata.Type,
		createDefaultConfig,
		connector.WithTracesToLogs(createTracesToLogs, metadata.TracesToLogsStability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{MaxGroups: engine.DefaultMaxGroups}
}

func createTracesToLogs(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Logs) (connector.Traces, error) {
	c := cfg.(*Config)
	loaded, err := rules.Load(c.RulesFile, c.ThresholdOverrides)
	if err != nil {
		return nil, err
	}
	return newConnector(set.Logger, loaded, c.MaxGroups, next, wallClock), nil
}

func wallClock() int64 { return time.Now().UnixNano() }
