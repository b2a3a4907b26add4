package b2bderive

import (
	"context"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/rules"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/semconv"
)

// t0 is an arbitrary start of the fake clock (seconds since the epoch).
const t0 = 1764400000.0

// testSpan describes one span fed to the connector in a test.
type testSpan struct {
	name     string
	kind     ptrace.SpanKind
	status   ptrace.StatusCode
	endS     float64 // end time in seconds since the epoch; the clock is set to it
	duration float64 // seconds
	attrs    map[string]any
	derived  bool // resource b2b.derived=true (the Python layer judged it)
	spanID   byte
}

// harness is a connector (traces -> logs and traces -> traces sharing one core) with a fake clock,
// a logs sink for the records and a traces sink for the marker spans.
type harness struct {
	t       testing.TB
	now     int64
	sink    *consumertest.LogsSink
	markers *consumertest.TracesSink
	core    *core
	conn    *tracesToLogs
}

func newHarness(t testing.TB, set *rules.Set, maxGroups int) *harness {
	t.Helper()
	return newHarnessMode(t, set, maxGroups, ModeJudge)
}

func newHarnessMode(t testing.TB, set *rules.Set, maxGroups int, mode string) *harness {
	t.Helper()
	h := &harness{t: t, sink: new(consumertest.LogsSink), markers: new(consumertest.TracesSink)}
	c, err := newCore(componenttest.NewNopTelemetrySettings(), zap.NewNop(), set,
		&Config{MaxGroups: maxGroups, Mode: mode}, func() int64 { return h.now })
	if err != nil {
		t.Fatal(err)
	}
	c.refs = 2
	if mode == ModeJudge {
		c.setLogs(h.sink)
	}
	c.setTraces(h.markers)
	h.core = c
	h.conn = &tracesToLogs{core: c}
	return h
}

// markerSpans are the emitted marker spans, in order.
func (h *harness) markerSpans() []ptrace.Span {
	var out []ptrace.Span
	for _, td := range h.markers.AllTraces() {
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			ss := td.ResourceSpans().At(i).ScopeSpans()
			for j := 0; j < ss.Len(); j++ {
				for k := 0; k < ss.At(j).Spans().Len(); k++ {
					out = append(out, ss.At(j).Spans().At(k))
				}
			}
		}
	}
	return out
}

func defaultRules(t testing.TB, overrides map[string]any) *rules.Set {
	t.Helper()
	set, err := rules.Load("", overrides)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func (h *harness) feed(spans ...testSpan) {
	h.t.Helper()
	for _, s := range spans {
		h.now = int64(s.endS * 1e9)
		if err := h.conn.ConsumeTraces(context.Background(), tracesOf(s)); err != nil {
			h.t.Fatal(err)
		}
	}
}

func tracesOf(s testSpan) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	if s.derived {
		rs.Resource().Attributes().PutBool(semconv.B2BDerivedKey, true)
	}
	span := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetName(s.name)
	span.SetKind(s.kind)
	span.Status().SetCode(s.status)
	end := int64(s.endS * 1e9)
	span.SetEndTimestamp(pcommon.Timestamp(end))
	span.SetStartTimestamp(pcommon.Timestamp(end - int64(s.duration*1e9)))
	span.SetTraceID(pcommon.TraceID{15: s.spanID})
	span.SetSpanID(pcommon.SpanID{7: s.spanID})
	if err := span.Attributes().FromRaw(s.attrs); err != nil {
		panic(err)
	}
	return td
}

// records are the emitted log records, in order, with their resources.
func (h *harness) records() []plog.LogRecord { return recordsOf(h.sink) }

// recordsOf are the log records a sink received, in order.
func recordsOf(sink *consumertest.LogsSink) []plog.LogRecord {
	var out []plog.LogRecord
	for _, logs := range sink.AllLogs() {
		for i := 0; i < logs.ResourceLogs().Len(); i++ {
			sl := logs.ResourceLogs().At(i).ScopeLogs()
			for j := 0; j < sl.Len(); j++ {
				for k := 0; k < sl.At(j).LogRecords().Len(); k++ {
					out = append(out, sl.At(j).LogRecords().At(k))
				}
			}
		}
	}
	return out
}

func (h *harness) ruleIDs() []string {
	var ids []string
	for _, lr := range h.records() {
		v, _ := lr.Attributes().Get(semconv.B2BRuleIDKey)
		ids = append(ids, v.Str())
	}
	return ids
}
