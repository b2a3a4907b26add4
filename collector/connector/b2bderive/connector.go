package b2bderive // import "github.com/b2b-otel/b2b-otel/collector/connector/b2bderive"

import (
	"context"
	"math/bits"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/engine"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/metadata"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/rules"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/semconv"
)

// deriveConnector judges every span against the rules and emits a log record per firing.
type deriveConnector struct {
	component.StartFunc
	component.ShutdownFunc

	logger      *zap.Logger
	next        consumer.Logs
	engine      *engine.Engine
	lastEvicted atomic.Uint64
}

func newConnector(logger *zap.Logger, set *rules.Set, maxGroups int, next consumer.Logs, clock func() int64) *deriveConnector {
	e := engine.New(set, maxGroups, clock)
	logger.Info("b2bderive: rules loaded", zap.String("rules_file", set.Source),
		zap.Int("rules", len(set.Rules)), zap.Int("span_rules", e.SpanRules()))
	return &deriveConnector{logger: logger, next: next, engine: e}
}

func (c *deriveConnector) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

// ConsumeTraces may run concurrently (the engine locks its windows); the spans are only read.
func (c *deriveConnector) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	out := plog.NewLogs()
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		// The Python layer already judged its own spans with the per-span rules; window rules are
		// judged here again, fleet-wide.
		perSpan := !judgedByProcess(rs.Resource())
		var records plog.LogRecordSlice
		started := false
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			spans := rs.ScopeSpans().At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				facts := engine.FactsOf(spans.At(k))
				firings := c.engine.Judge(&facts, perSpan)
				for n := range firings {
					if !started {
						records = startResource(out, rs.Resource())
						started = true
					}
					writeRecord(records.AppendEmpty(), &firings[n])
				}
			}
		}
	}
	c.reportEvictions()
	if out.LogRecordCount() == 0 {
		return nil
	}
	if err := c.next.ConsumeLogs(ctx, out); err != nil {
		// The traces pipeline must not fail (and the senders retry, double-counting windows) because
		// the records' pipeline did: the records are dropped and said so.
		c.logger.Warn("b2bderive: derived records dropped", zap.Int("records", out.LogRecordCount()), zap.Error(err))
	}
	return nil
}

// judgedByProcess: the resource carries b2b.derived=true, set by the Python layer on all it exports.
func judgedByProcess(res pcommon.Resource) bool {
	v, ok := res.Attributes().Get(semconv.B2BDerivedKey)
	if !ok {
		return false
	}
	switch v.Type() {
	case pcommon.ValueTypeBool:
		return v.Bool()
	case pcommon.ValueTypeStr:
		return strings.EqualFold(v.Str(), "true")
	}
	return false
}

// startResource adds the resource of the emitted records: the triggering spans' resource (service.name
// and the rest), without b2b.derived, which marks what the Python layer produced.
func startResource(out plog.Logs, res pcommon.Resource) plog.LogRecordSlice {
	rl := out.ResourceLogs().AppendEmpty()
	res.CopyTo(rl.Resource())
	rl.Resource().Attributes().Remove(semconv.B2BDerivedKey)
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName(metadata.ScopeName)
	return sl.LogRecords()
}

func (c *deriveConnector) reportEvictions() {
	evicted := c.engine.Evicted()
	last := c.lastEvicted.Load()
	if evicted == last || !c.lastEvicted.CompareAndSwap(last, evicted) {
		return
	}
	// Reported when the total passes a power of two, so a sustained flood does not flood the log too.
	if bitLen(evicted) != bitLen(last) {
		c.logger.Warn("b2bderive: window groups evicted to stay within max_groups (a flood of distinct group values?)",
			zap.Uint64("evicted_total", evicted), zap.Int("tracked_groups", c.engine.TrackedGroups()))
	}
}

func bitLen(x uint64) int { return bits.Len64(x) }
