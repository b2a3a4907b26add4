// Package b2bderive is the b2bderive connector: it judges every span (traces -> logs, traces ->
// traces for alert marker spans) and the sampled gauges of metrics (metrics -> logs) against the
// rules file the Python layer reads, fleet-wide, and emits a derived log record and a marker span
// for each firing (README.md). In mode route (an agent collector) it emits instead the window copies
// of spans, keyed by their group for the loadbalancing exporter. The rules file is read by
// internal/rules, judged by internal/engine; the names it writes come from internal/semconv,
// generated from the registry in docs/semconv.
package b2bderive // import "github.com/b2b-otel/b2b-otel/collector/connector/b2bderive"

//go:generate go -C ../../tools tool mdatagen ../connector/b2bderive/metadata.yaml

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer"
	"go.uber.org/zap"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/engine"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/metadata"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/rules"
)

// NewFactory returns the factory of the b2bderive connector.
func NewFactory() connector.Factory {
	return connector.NewFactory(
		metadata.Type,
		createDefaultConfig,
		connector.WithTracesToLogs(createTracesToLogs, metadata.TracesToLogsStability),
		connector.WithTracesToTraces(createTracesToTraces, metadata.TracesToTracesStability),
		connector.WithMetricsToLogs(createMetricsToLogs, metadata.MetricsToLogsStability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{MaxGroups: engine.DefaultMaxGroups, Mode: ModeJudge}
}

// One connector of the configuration (one component id) is one core, whichever pipelines it
// connects: the traces -> logs and traces -> traces instances the collector creates for it share
// the windows (a span is judged once, its firing becomes a record and a marker), and the metrics ->
// logs instance shares the gauge states and the telemetry.
var (
	coresMu sync.Mutex
	cores   = map[component.ID]*core{}
)

func acquire(set connector.Settings, cfg *Config, clock func() int64) (*core, error) {
	coresMu.Lock()
	defer coresMu.Unlock()
	if c, ok := cores[set.ID]; ok {
		c.refs++
		return c, nil
	}
	loaded, unknown, err := rules.LoadWithEnvironment(cfg.RulesFile, cfg.ThresholdOverrides, os.Environ())
	if err != nil {
		return nil, err
	}
	for _, name := range unknown {
		set.Logger.Warn("b2bderive: a threshold variable names no rule of the rules file; ignored",
			zap.String("variable", name), zap.String("rules_file", loaded.Source))
	}
	c, err := newCore(set.TelemetrySettings, set.Logger, loaded, cfg, clock)
	if err != nil {
		return nil, err
	}
	c.id = set.ID
	c.refs = 1
	cores[set.ID] = c
	return c, nil
}

func (c *core) release() {
	coresMu.Lock()
	defer coresMu.Unlock()
	c.refs--
	if c.refs > 0 {
		return
	}
	if cores[c.id] == c {
		delete(cores, c.id)
	}
	c.telemetry.Shutdown()
}

func createTracesToLogs(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Logs) (connector.Traces, error) {
	c := cfg.(*Config)
	if c.mode() == ModeRoute {
		return nil, fmt.Errorf("mode=%s emits the window copies of spans (traces -> traces) only; use it as a receiver of a traces pipeline", ModeRoute)
	}
	core, err := acquire(set, c, wallClock)
	if err != nil {
		return nil, err
	}
	core.setLogs(next)
	return &tracesToLogs{core: core}, nil
}

func createTracesToTraces(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Traces) (connector.Traces, error) {
	core, err := acquire(set, cfg.(*Config), wallClock)
	if err != nil {
		return nil, err
	}
	core.setTraces(next)
	return &tracesToTraces{core: core}, nil
}

func createMetricsToLogs(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Logs) (connector.Metrics, error) {
	c := cfg.(*Config)
	if c.mode() == ModeRoute {
		return nil, fmt.Errorf("mode=%s emits the window copies of spans (traces -> traces) only; metrics are judged by a gateway's b2bderive", ModeRoute)
	}
	core, err := acquire(set, c, wallClock)
	if err != nil {
		return nil, err
	}
	return &metricsToLogs{core: core, next: next}, nil
}

func wallClock() int64 { return time.Now().UnixNano() }
