package b2bderive // import "github.com/b2b-otel/b2b-otel/collector/connector/b2bderive"

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer"
)

const typeStr = "b2bderive"

// Type is the component type of the connector, as written in a collector configuration.
var Type = component.MustNewType(typeStr)

// NewFactory returns the factory of the b2bderive connector (traces -> logs).
func NewFactory() connector.Factory {
	return connector.NewFactory(
		Type,
		createDefaultConfig,
		connector.WithTracesToLogs(createTracesToLogs, component.StabilityLevelAlpha),
	)
}

func createDefaultConfig() component.Config {
	return &Config{MaxGroups: defaultMaxGroups}
}

func createTracesToLogs(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Logs) (connector.Traces, error) {
	c := cfg.(*Config)
	rules, err := LoadRules(c.RulesFile, c.ThresholdOverrides)
	if err != nil {
		return nil, err
	}
	return newConnector(set.Logger, rules, c.MaxGroups, next, wallClock), nil
}

func wallClock() int64 { return time.Now().UnixNano() }
