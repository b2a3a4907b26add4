// Package b2bspool is the b2bspool processor: a durable spool in front of a component that holds
// spans in memory only (the tail_sampling processor during its decision wait). Each batch is
// written to an append-only segment file in its directory before it is passed on, so the receiver
// acknowledges the sender only once the spool holds the spans; at start, the segments a killed run
// left are replayed downstream, in order (README.md). Delivery is at least once: a replayed span
// that was already exported reaches the backend again (Jaeger's Badger store keeps one copy).
package b2bspool // import "github.com/b2b-otel/b2b-otel/collector/processor/b2bspool"

//go:generate go -C ../../tools tool mdatagen ../processor/b2bspool/metadata.yaml

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"

	"github.com/b2b-otel/b2b-otel/collector/processor/b2bspool/internal/metadata"
)

// NewFactory returns the factory of the b2bspool processor.
func NewFactory() processor.Factory {
	return processor.NewFactory(
		metadata.Type,
		createDefaultConfig,
		processor.WithTraces(createTraces, metadata.TracesStability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		Retain:          DefaultRetain,
		SegmentDuration: DefaultSegmentDuration,
		MaxSegmentBytes: DefaultMaxSegmentBytes,
		MaxTotalBytes:   DefaultMaxTotalBytes,
	}
}

func createTraces(_ context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
	return newSpool(set, cfg.(*Config), next, time.Now)
}
