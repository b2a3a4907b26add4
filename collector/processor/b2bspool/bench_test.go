package b2bspool

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"

	"github.com/b2b-otel/b2b-otel/collector/processor/b2bspool/internal/metadatatest"
)

// The spool's cost per span: a batch of 1000 spans encoded and appended (page cache; fsync: the
// disk's flush per batch on top). go test -bench . -run '^$' ./processor/b2bspool
func BenchmarkConsumeTraces(b *testing.B) {
	for _, fsync := range []bool{false, true} {
		name := "page-cache"
		if fsync {
			name = "fsync"
		}
		b.Run(name, func(b *testing.B) {
			cfg := testConfig(b.TempDir())
			cfg.Fsync = fsync
			cfg.Retain = 200 * time.Millisecond // steady state: what is written is deleted again
			cfg.SegmentDuration = 50 * time.Millisecond
			p, err := newSpool(metadatatest.NewSettings(componenttest.NewTelemetry()), cfg, consumertest.NewNop(), time.Now)
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Start(context.Background(), componenttest.NewNopHost()); err != nil {
				b.Fatal(err)
			}
			defer func() { _ = p.Shutdown(context.Background()) }()
			td := batch(1, 1000)
			b.ResetTimer()
			for b.Loop() {
				if err := p.ConsumeTraces(context.Background(), td); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "spans/s")
		})
	}
}
