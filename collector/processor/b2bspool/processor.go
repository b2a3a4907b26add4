package b2bspool // import "github.com/b2b-otel/b2b-otel/collector/processor/b2bspool"

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/b2b-otel/b2b-otel/collector/processor/b2bspool/internal/metadata"
)

type spool struct {
	cfg       *Config
	next      consumer.Traces
	logger    *zap.Logger
	telemetry *metadata.TelemetryBuilder
	now       func() time.Time

	mu    sync.Mutex // guards store between Start/Shutdown and the telemetry callback
	store *store     // set by Start, nil after Shutdown
	// reported: segments deleted already counted in the telemetry (only maintenance touches it).
	reported int64
	stop     chan struct{}
	done     sync.WaitGroup
}

func newSpool(set processor.Settings, cfg *Config, next consumer.Traces, now func() time.Time) (*spool, error) {
	telemetry, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	p := &spool{cfg: cfg, next: next, logger: set.Logger, telemetry: telemetry, now: now}
	if err := telemetry.RegisterProcessorB2bspoolDiskUsageCallback(func(_ context.Context, o metric.Int64Observer) error {
		if s := p.current(); s != nil {
			o.Observe(s.bytes())
		}
		return nil
	}); err != nil {
		telemetry.Shutdown()
		return nil, err
	}
	return p, nil
}

func (p *spool) current() *store {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.store
}

func (p *spool) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

// Start opens the directory and replays, downstream and in order, every segment a previous run
// left (the components after the spool are started already), then keeps them for another retain.
func (p *spool) Start(ctx context.Context, _ component.Host) error {
	s, err := openStore(storeConfig{
		dir:             p.cfg.Directory,
		retain:          p.cfg.Retain,
		segmentDuration: p.cfg.SegmentDuration,
		maxSegmentBytes: p.cfg.MaxSegmentBytes,
		maxTotalBytes:   p.cfg.MaxTotalBytes,
		fsync:           p.cfg.Fsync,
	}, p.now)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.store = s
	p.mu.Unlock()
	if err := p.replay(ctx, s); err != nil {
		_ = s.close()
		p.mu.Lock()
		p.store = nil
		p.mu.Unlock()
		return err
	}
	p.stop = make(chan struct{})
	p.done.Add(1)
	go p.maintain(s)
	return nil
}

func (p *spool) replay(ctx context.Context, s *store) error {
	segments := s.leftovers()
	if segments == 0 {
		return nil
	}
	var records, spans, corrupt, refused int64
	unmarshaler := &ptrace.ProtoUnmarshaler{}
	started := p.now()
	err := s.replay(func(payload []byte) {
		td, err := unmarshaler.UnmarshalTraces(payload)
		if err != nil {
			corrupt++
			p.telemetry.ProcessorB2bspoolRecordsCorrupt.Add(ctx, 1)
			p.logger.Warn("b2bspool: a spooled batch does not decode; skipped", zap.Error(err))
			return
		}
		n := td.SpanCount()
		if err := p.next.ConsumeTraces(ctx, td); err != nil {
			// Still on disk (for another retain); the next start replays it again.
			refused++
			p.logger.Warn("b2bspool: the next component refused a replayed batch", zap.Int("spans", n), zap.Error(err))
			return
		}
		records++
		spans += int64(n)
		p.telemetry.ProcessorB2bspoolRecordsReplayed.Add(ctx, 1)
		p.telemetry.ProcessorB2bspoolSpansReplayed.Add(ctx, int64(n))
	}, func(d damage) {
		corrupt++
		p.telemetry.ProcessorB2bspoolRecordsCorrupt.Add(ctx, 1)
		p.logger.Warn("b2bspool: a damaged record in a segment left by the previous run; skipped",
			zap.String("segment", d.path), zap.Int64("offset", d.offset), zap.String("reason", d.reason))
	})
	if err != nil {
		return fmt.Errorf("replaying %s: %w", p.cfg.Directory, err)
	}
	p.logger.Info("b2bspool: replayed the segments the previous run left",
		zap.String("directory", p.cfg.Directory), zap.Int("segments", segments), zap.Int64("records", records),
		zap.Int64("spans", spans), zap.Int64("corrupt", corrupt), zap.Int64("refused_downstream", refused),
		zap.Duration("took", p.now().Sub(started)), zap.Duration("kept_for", p.cfg.Retain))
	return nil
}

func (p *spool) maintain(s *store) {
	defer p.done.Done()
	every := min(p.cfg.Retain, p.cfg.SegmentDuration) / 4
	every = max(min(every, time.Second), 10*time.Millisecond)
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-ticker.C:
			if deleted := s.maintain(); deleted > p.reported {
				p.telemetry.ProcessorB2bspoolSegmentsDeleted.Add(context.Background(), deleted-p.reported)
				p.reported = deleted
			}
		}
	}
}

// ConsumeTraces writes the batch to the spool and only then passes it on: an error (the spool is
// full, or the disk failed) refuses the batch, and the sender retries it.
func (p *spool) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	s := p.current()
	if s == nil {
		return errors.New("b2bspool: not started")
	}
	spans := td.SpanCount()
	if spans == 0 {
		return p.next.ConsumeTraces(ctx, td)
	}
	payload, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		return consumererror.NewPermanent(fmt.Errorf("b2bspool: encoding a batch of %d spans: %w", spans, err))
	}
	if err := s.append(payload); err != nil {
		p.telemetry.ProcessorB2bspoolRecordsRefused.Add(ctx, 1)
		err = fmt.Errorf("b2bspool: refused a batch of %d spans: %w", spans, err)
		if !errors.Is(err, errFull) && int64(len(payload)) > p.cfg.MaxTotalBytes {
			return consumererror.NewPermanent(err)
		}
		return err
	}
	p.telemetry.ProcessorB2bspoolRecordsWritten.Add(ctx, 1)
	p.telemetry.ProcessorB2bspoolSpansWritten.Add(ctx, int64(spans))
	return p.next.ConsumeTraces(ctx, td)
}

// Shutdown closes the segment being written; the segments stay for the next start to replay.
func (p *spool) Shutdown(context.Context) error {
	var err error
	if p.stop != nil {
		close(p.stop)
		p.done.Wait()
		p.stop = nil
	}
	p.mu.Lock()
	s := p.store
	p.store = nil
	p.mu.Unlock()
	if s != nil {
		err = s.close()
	}
	p.telemetry.Shutdown()
	return err
}
