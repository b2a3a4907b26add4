package b2bderive // import "github.com/b2b-otel/b2b-otel/collector/connector/b2bderive"

import (
	"context"
	"math/bits"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/engine"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/metadata"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/rules"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/semconv"
)

// core is one configured connector: the engine and the consumers of what it emits.
type core struct {
	id        component.ID
	refs      int // instances using it (guarded by coresMu)
	logger    *zap.Logger
	engine    *engine.Engine
	set       *rules.Set
	clock     func() int64
	telemetry *metadata.TelemetryBuilder
	mode      string
	router    *router // mode route

	mu     sync.RWMutex
	logs   consumer.Logs   // derived records (traces -> logs instance)
	traces consumer.Traces // marker spans, or the window copies in mode route (traces -> traces)

	lastEvicted atomic.Uint64
	// ruleAttrs are the telemetry attributes of each rule id, made once (read-only afterwards).
	ruleAttrs map[string]metric.MeasurementOption
}

func (c *core) ruleOption(ruleID string) metric.MeasurementOption {
	if o, ok := c.ruleAttrs[ruleID]; ok {
		return o
	}
	return metric.WithAttributes(attribute.String(semconv.B2BRuleIDKey, ruleID))
}

func newCore(tel component.TelemetrySettings, logger *zap.Logger, set *rules.Set, cfg *Config, clock func() int64) (*core, error) {
	telemetry, err := metadata.NewTelemetryBuilder(tel)
	if err != nil {
		return nil, err
	}
	c := &core{logger: logger, telemetry: telemetry, mode: cfg.mode(), set: set, clock: clock}
	c.ruleAttrs = make(map[string]metric.MeasurementOption, len(set.Rules))
	for _, r := range set.Rules {
		c.ruleAttrs[r.ID] = metric.WithAttributeSet(attribute.NewSet(attribute.String(semconv.B2BRuleIDKey, r.ID)))
	}
	c.engine = engine.New(set, cfg.MaxGroups, clock)
	c.engine.OnEvict(func(ruleID string) {
		c.telemetry.ConnectorB2bderiveGroupsEvicted.Add(context.Background(), 1, c.ruleOption(ruleID))
	})
	if err := telemetry.RegisterConnectorB2bderiveGroupsTrackedCallback(func(_ context.Context, o metric.Int64Observer) error {
		o.Observe(int64(c.engine.TrackedGroups()))
		return nil
	}); err != nil {
		return nil, err
	}
	if c.mode == ModeRoute {
		c.router = newRouter(c.engine.WindowRules())
	}
	logger.Info("b2bderive: rules loaded", zap.String("rules_file", set.Source), zap.String("mode", c.mode),
		zap.Int("rules", len(set.Rules)), zap.Int("span_rules", c.engine.SpanRules()),
		zap.Int("gauge_rules", c.engine.GaugeRules()))
	return c, nil
}

func (c *core) setLogs(next consumer.Logs) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.logs = next
}

func (c *core) setTraces(next consumer.Traces) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.traces = next
}

func (c *core) consumers() (consumer.Logs, consumer.Traces) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.logs, c.traces
}

// tracesToLogs is the traces -> logs instance: it judges the spans (records, and markers to the
// traces -> traces instance's pipeline when there is one).
type tracesToLogs struct{ core *core }

func (t *tracesToLogs) Start(context.Context, component.Host) error { return nil }
func (t *tracesToLogs) Shutdown(context.Context) error {
	t.core.release()
	return nil
}
func (t *tracesToLogs) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }
func (t *tracesToLogs) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	t.core.judgeTraces(ctx, td)
	return nil
}

// tracesToTraces is the traces -> traces instance: marker spans (judging the spans itself only when
// no traces -> logs instance does), or the window copies in mode route.
type tracesToTraces struct{ core *core }

func (t *tracesToTraces) Start(context.Context, component.Host) error { return nil }
func (t *tracesToTraces) Shutdown(context.Context) error {
	t.core.release()
	return nil
}
func (t *tracesToTraces) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }
func (t *tracesToTraces) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	if t.core.mode == ModeRoute {
		t.core.route(ctx, td)
		return nil
	}
	// The same spans reach the traces -> logs instance, which judges them once for both outputs.
	if logs, _ := t.core.consumers(); logs != nil {
		return nil
	}
	t.core.judgeTraces(ctx, td)
	return nil
}

// judgeTraces judges every span (concurrent calls are safe: the engine locks its windows; the
// spans are only read) and emits a record and a marker span per firing.
func (c *core) judgeTraces(ctx context.Context, td ptrace.Traces) {
	logsNext, tracesNext := c.consumers()
	out := plog.NewLogs()
	markers := ptrace.NewTraces()
	judged := 0
	now := c.clock() // one reading for the batch: its spans were consumed together
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		sel := selectionOf(rs.Resource())
		var records plog.LogRecordSlice
		var markerSpans ptrace.SpanSlice
		started := false
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			spans := rs.ScopeSpans().At(j).Spans()
			judged += spans.Len()
			for k := 0; k < spans.Len(); k++ {
				facts := engine.FactsOf(spans.At(k))
				firings := c.engine.JudgeAt(&facts, sel, now)
				for n := range firings {
					if !started {
						records = startResource(out, rs.Resource())
						markerSpans = startMarkerResource(markers, rs.Resource())
						started = true
					}
					c.countFiring(ctx, &firings[n])
					if logsNext != nil {
						writeRecord(records.AppendEmpty(), &firings[n])
					}
					if tracesNext != nil {
						writeMarker(markerSpans.AppendEmpty(), &firings[n])
					}
				}
			}
		}
	}
	c.telemetry.ConnectorB2bderiveSpansJudged.Add(ctx, int64(judged))
	c.reportEvictions()
	c.emit(ctx, logsNext, out, tracesNext, markers)
}

func (c *core) countFiring(ctx context.Context, f *engine.Firing) {
	c.telemetry.ConnectorB2bderiveFirings.Add(ctx, 1, c.ruleOption(f.Rule.ID))
}

// emit sends the records and markers on. The pipeline that fed the connector must not fail (and the
// senders retry, double-counting windows) because the records' pipeline did: what is refused is
// dropped, counted and said so.
func (c *core) emit(ctx context.Context, logsNext consumer.Logs, out plog.Logs, tracesNext consumer.Traces, markers ptrace.Traces) {
	if logsNext != nil && out.LogRecordCount() > 0 {
		if err := logsNext.ConsumeLogs(ctx, out); err != nil {
			c.telemetry.ConnectorB2bderiveRecordsDropped.Add(ctx, int64(out.LogRecordCount()))
			c.logger.Warn("b2bderive: derived records dropped", zap.Int("records", out.LogRecordCount()), zap.Error(err))
		}
	}
	if tracesNext != nil && markers.SpanCount() > 0 {
		if err := tracesNext.ConsumeTraces(ctx, markers); err != nil {
			c.telemetry.ConnectorB2bderiveRecordsDropped.Add(ctx, int64(markers.SpanCount()))
			c.logger.Warn("b2bderive: alert marker spans dropped", zap.Int("spans", markers.SpanCount()), zap.Error(err))
		}
	}
}

// selectionOf says which rules a span of this resource is judged by: per-span rules unless the
// Python layer judged it (b2b.derived=true); window rules unless an agent collector routed its
// window copies elsewhere (b2b.fleet.route=trace); only the window rules of its route for such a copy.
func selectionOf(res pcommon.Resource) engine.Selection {
	perSpan := !judgedByProcess(res)
	route, ok := res.Attributes().Get(semconv.B2BFleetRouteKey)
	if !ok {
		return engine.Selection{PerSpan: perSpan, Windows: true}
	}
	if route.AsString() == routeTrace {
		return engine.Selection{PerSpan: perSpan}
	}
	return engine.Selection{Windows: true, Route: route.AsString(), Routed: true}
}

// routeTrace is the b2b.fleet.route of the copies an agent routes by trace id.
const routeTrace = "trace"

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

// ownResource is the resource of what the connector emits: the triggering data's resource
// (service.name and the rest) without b2b.derived, which marks what the Python layer produced, and
// without the routing attributes of a window copy.
func ownResource(dst, res pcommon.Resource) {
	res.CopyTo(dst)
	attrs := dst.Attributes()
	attrs.Remove(semconv.B2BDerivedKey)
	attrs.Remove(semconv.B2BFleetRouteKey)
	attrs.Remove(semconv.B2BFleetGroupKey)
}

func startResource(out plog.Logs, res pcommon.Resource) plog.LogRecordSlice {
	rl := out.ResourceLogs().AppendEmpty()
	ownResource(rl.Resource(), res)
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName(metadata.ScopeName)
	return sl.LogRecords()
}

func startMarkerResource(out ptrace.Traces, res pcommon.Resource) ptrace.SpanSlice {
	rs := out.ResourceSpans().AppendEmpty()
	ownResource(rs.Resource(), res)
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName(metadata.ScopeName)
	return ss.Spans()
}

// writeMarker fills span with the marker of a firing: `alert {rule id}`, a child of the triggering
// span in its trace (a new trace when the firing has none, e.g. a gauge), with the record's
// attributes, so that Jaeger shows the alert where it happened.
func writeMarker(span ptrace.Span, f *engine.Firing) {
	ts := pcommon.Timestamp(f.AtNanos)
	span.SetName(alertSpanPrefix + f.Rule.ID)
	span.SetKind(ptrace.SpanKindInternal)
	span.SetStartTimestamp(ts)
	span.SetEndTimestamp(ts)
	traceID := f.Facts.TraceID
	if traceID.IsEmpty() {
		traceID = randomTraceID()
	} else {
		span.SetParentSpanID(f.Facts.SpanID)
	}
	span.SetTraceID(traceID)
	span.SetSpanID(randomSpanID())
	writeAttributes(span.Attributes(), f)
}

func randomTraceID() pcommon.TraceID {
	var id pcommon.TraceID
	for id.IsEmpty() {
		hi, lo := rand.Uint64(), rand.Uint64()
		for i := range 8 {
			id[i], id[8+i] = byte(hi>>(56-8*i)), byte(lo>>(56-8*i))
		}
	}
	return id
}

func randomSpanID() pcommon.SpanID {
	var id pcommon.SpanID
	for id.IsEmpty() {
		v := rand.Uint64()
		for i := range 8 {
			id[i] = byte(v >> (56 - 8*i))
		}
	}
	return id
}

func (c *core) reportEvictions() {
	evicted := c.engine.Evicted()
	last := c.lastEvicted.Load()
	if evicted == last || !c.lastEvicted.CompareAndSwap(last, evicted) {
		return
	}
	// Reported when the total passes a power of two, so a sustained flood does not flood the log too;
	// otelcol_connector_b2bderive_groups_evicted counts every one.
	if bits.Len64(evicted) != bits.Len64(last) {
		c.logger.Warn("b2bderive: window groups evicted to stay within max_groups (a flood of distinct group values?)",
			zap.Uint64("evicted_total", evicted), zap.Int("tracked_groups", c.engine.TrackedGroups()))
	}
}

// alertSpanPrefix starts the name of a marker span, `alert {rule id}` (SPEC section 5; the Python
// layer's semconv.alert_span_name).
const alertSpanPrefix = "alert "
