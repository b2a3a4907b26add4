package b2bderive

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/metadatatest"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/semconv"
)

func TestMarkerSpanPerFiring(t *testing.T) {
	h := newHarness(t, defaultRules(t, nil), 100)
	h.feed(agent(t0, 4, false))
	markers := h.markerSpans()
	if len(markers) != 1 {
		t.Fatalf("%d marker spans, want 1", len(markers))
	}
	m := markers[0]
	if m.Name() != "alert agent.execution.slow" {
		t.Errorf("marker name %q", m.Name())
	}
	if m.TraceID() != (pcommon.TraceID{15: 1}) || m.ParentSpanID() != (pcommon.SpanID{7: 1}) {
		t.Errorf("marker not a child of the triggering span: trace %s parent %s", m.TraceID(), m.ParentSpanID())
	}
	if m.SpanID().IsEmpty() || m.SpanID() == (pcommon.SpanID{7: 1}) {
		t.Errorf("marker span id %s", m.SpanID())
	}
	if id, _ := m.Attributes().Get(semconv.B2BRuleIDKey); id.Str() != "agent.execution.slow" {
		t.Errorf("marker attributes %v", m.Attributes().AsRaw())
	}
	if scope, _ := m.Attributes().Get(semconv.B2BScopeKey); scope.Str() != semconv.B2BScopeFleet {
		t.Errorf("marker b2b.scope %v", scope.AsString())
	}
	if len(h.records()) != 1 {
		t.Errorf("%d records, want 1 beside the marker", len(h.records()))
	}
}

// The traces -> traces instance of a connector that also has a traces -> logs instance does not judge
// the (same) spans again; alone, it judges them.
func TestTracesToTracesJudgesOnlyWithoutLogs(t *testing.T) {
	f := NewFactory()
	cfg := f.CreateDefaultConfig()
	set := connectortest.NewNopSettings(f.Type())
	logs := new(consumertest.LogsSink)
	markers := new(consumertest.TracesSink)
	toLogs, err := f.CreateTracesToLogs(context.Background(), set, cfg, logs)
	if err != nil {
		t.Fatal(err)
	}
	toTraces, err := f.CreateTracesToTraces(context.Background(), set, cfg, markers)
	if err != nil {
		t.Fatal(err)
	}
	td := tracesOf(login(t0, "203.0.113.9", false))
	for range 5 { // the fan-out gives both instances every batch
		if err := toLogs.ConsumeTraces(context.Background(), td); err != nil {
			t.Fatal(err)
		}
		if err := toTraces.ConsumeTraces(context.Background(), td); err != nil {
			t.Fatal(err)
		}
	}
	if logs.LogRecordCount() != 1 || markers.SpanCount() != 1 {
		t.Errorf("%d records and %d markers, want one brute force each (spans judged twice?)", logs.LogRecordCount(), markers.SpanCount())
	}
	for _, c := range []interface{ Shutdown(context.Context) error }{toLogs, toTraces} {
		if err := c.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	coresMu.Lock()
	left := len(cores)
	coresMu.Unlock()
	if left != 0 {
		t.Errorf("%d cores left after shutdown", left)
	}

	alone, err := f.CreateTracesToTraces(context.Background(), set, cfg, markers)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = alone.Shutdown(context.Background()) }()
	if err := alone.ConsumeTraces(context.Background(), tracesOf(agent(t0, 400, false))); err != nil {
		t.Fatal(err)
	}
	if markers.SpanCount() != 1+2 {
		t.Errorf("%d markers, want 2 more (agent.execution.critical and .slow)", markers.SpanCount())
	}
}

func gaugeMetrics(derived bool, points map[string]float64, attrs map[string]any) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "planner")
	if derived {
		rm.Resource().Attributes().PutBool(semconv.B2BDerivedKey, true)
	}
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	for name, value := range points {
		m := ms.AppendEmpty()
		m.SetName(name)
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetDoubleValue(value)
		if err := dp.Attributes().FromRaw(attrs); err != nil {
			panic(err)
		}
	}
	return md
}

func TestGaugeRulesOnMetrics(t *testing.T) {
	f := NewFactory()
	logs := new(consumertest.LogsSink)
	conn, err := f.CreateMetricsToLogs(context.Background(), connectortest.NewNopSettings(f.Type()), f.CreateDefaultConfig(), logs)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Shutdown(context.Background()) }()
	send := func(md pmetric.Metrics) {
		t.Helper()
		if err := conn.ConsumeMetrics(context.Background(), md); err != nil {
			t.Fatal(err)
		}
	}
	agentAttrs := map[string]any{"gen_ai.agent.name": "planner"}
	send(gaugeMetrics(false, map[string]float64{semconv.MetricB2BAgentQueueDepth: 4}, agentAttrs))
	send(gaugeMetrics(false, map[string]float64{semconv.MetricB2BAgentQueueDepth: 12}, agentAttrs))
	send(gaugeMetrics(false, map[string]float64{semconv.MetricB2BAgentQueueDepth: 15}, agentAttrs)) // still breaching
	send(gaugeMetrics(true, map[string]float64{semconv.MetricB2BAgentQueueDepth: 50}, map[string]any{"gen_ai.agent.name": "other"}))
	quota := map[string]any{"gen_ai.provider.name": "openai", "b2b.llm.quota.kind": "tokens"}
	send(gaugeMetrics(false, map[string]float64{semconv.MetricB2BLlmQuotaUtilization: 0.85}, quota))
	send(gaugeMetrics(false, map[string]float64{semconv.MetricB2BAgentQueueDepth: 3}, agentAttrs))
	send(gaugeMetrics(false, map[string]float64{semconv.MetricB2BAgentQueueDepth: 11}, agentAttrs)) // enters again

	// Pool utilisation from the used connections and the pool's maximum.
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	count := ms.AppendEmpty()
	count.SetName(semconv.MetricDBClientConnectionCount)
	sum := count.SetEmptySum()
	for state, v := range map[string]int64{semconv.StateUsed: 19, semconv.StateIdle: 1} {
		dp := sum.DataPoints().AppendEmpty()
		dp.SetIntValue(v)
		dp.Attributes().PutStr(semconv.DBClientConnectionPoolNameKey, "orders")
		dp.Attributes().PutStr(semconv.StateKey, state)
	}
	maxMetric := ms.AppendEmpty()
	maxMetric.SetName(semconv.MetricDBClientConnectionMax)
	mdp := maxMetric.SetEmptySum().DataPoints().AppendEmpty()
	mdp.SetIntValue(20)
	mdp.Attributes().PutStr(semconv.DBClientConnectionPoolNameKey, "orders")
	send(md)

	var got []string
	for _, lr := range recordsOf(logs) {
		id, _ := lr.Attributes().Get(semconv.B2BRuleIDKey)
		observed, _ := lr.Attributes().Get(semconv.B2BObservedValueKey)
		got = append(got, fmt.Sprintf("%s=%g", id.Str(), observed.Double()))
	}
	want := []string{"agent.queue.depth=12", "external.llm.quota=0.85", "agent.queue.depth=11", "db.pool.exhaustion=0.95"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("records %v, want %v", got, want)
	}
	for _, lr := range recordsOf(logs) {
		if lr.EventName() != semconv.EventB2BSLABreach {
			t.Errorf("gauge record event %q", lr.EventName())
		}
	}
}

// A gauge rule fired from a metric has a marker span too (as in the Python layer): the root of a
// trace of its own, on the metric's resource, out of the traces -> traces instance's pipeline.
func TestGaugeFiringsFromMetricsHaveARootMarkerSpan(t *testing.T) {
	f := NewFactory()
	cfg := f.CreateDefaultConfig()
	set := connectortest.NewNopSettings(f.Type())
	logs := new(consumertest.LogsSink)
	markers := new(consumertest.TracesSink)
	toTraces, err := f.CreateTracesToTraces(context.Background(), set, cfg, markers)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = toTraces.Shutdown(context.Background()) }()
	toLogs, err := f.CreateMetricsToLogs(context.Background(), set, cfg, logs)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = toLogs.Shutdown(context.Background()) }()
	agentAttrs := map[string]any{"gen_ai.agent.name": "planner"}
	for _, depth := range []float64{4, 12, 15} { // one entry into the breach
		if err := toLogs.ConsumeMetrics(context.Background(), gaugeMetrics(false, map[string]float64{semconv.MetricB2BAgentQueueDepth: depth}, agentAttrs)); err != nil {
			t.Fatal(err)
		}
	}
	if logs.LogRecordCount() != 1 || markers.SpanCount() != 1 {
		t.Fatalf("%d records and %d markers, want 1 each", logs.LogRecordCount(), markers.SpanCount())
	}
	rs := markers.AllTraces()[0].ResourceSpans().At(0)
	if name, _ := rs.Resource().Attributes().Get("service.name"); name.Str() != "planner" {
		t.Errorf("marker resource %v", rs.Resource().Attributes().AsRaw())
	}
	m := rs.ScopeSpans().At(0).Spans().At(0)
	if m.Name() != "alert agent.queue.depth" || m.TraceID().IsEmpty() || m.SpanID().IsEmpty() || !m.ParentSpanID().IsEmpty() {
		t.Errorf("marker %q trace %s span %s parent %s: want a root span of its own trace", m.Name(), m.TraceID(), m.SpanID(), m.ParentSpanID())
	}
	record := recordsOf(logs)[0]
	if id, _ := m.Attributes().Get(semconv.B2BRuleIDKey); id.Str() != "agent.queue.depth" {
		t.Errorf("marker attributes %v", m.Attributes().AsRaw())
	}
	if observed, _ := m.Attributes().Get(semconv.B2BObservedValueKey); observed.Double() != 12 {
		t.Errorf("marker observed value %v (record %v)", observed.AsRaw(), record.Attributes().AsRaw())
	}
}

func TestThresholdVariables(t *testing.T) {
	t.Setenv("B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD", "500ms")
	t.Setenv("B2B_OTEL_RULE_SECURITY_LOGIN_BRUTEFORCE_THRESHOLD", "2")
	t.Setenv("B2B_OTEL_RULE_NO_SUCH_RULE_THRESHOLD", "3") // ignored (warned): another process's rules
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	// threshold_overrides wins over the variable.
	cfg.ThresholdOverrides = map[string]any{"security.login.bruteforce": 3}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := acquire(connectortest.NewNopSettings(f.Type()), cfg, wallClock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.release()
	thresholds := map[string]float64{}
	for _, r := range c.engine.WindowRules() {
		thresholds[r.ID] = r.Threshold
	}
	if thresholds["security.login.bruteforce"] != 3 {
		t.Errorf("bruteforce threshold %v, want the configured 3", thresholds["security.login.bruteforce"])
	}
	h := newHarness(t, c.set, 100)
	h.feed(agent(t0, 0.6, false))
	if ids := h.ruleIDs(); fmt.Sprint(ids) != "[agent.execution.slow]" {
		t.Errorf("fired %v, want agent.execution.slow at the 500ms of the variable", ids)
	}

	t.Setenv("B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD", "3 sec")
	err = cfg.Validate()
	if err == nil {
		t.Fatal("a bad threshold variable was accepted")
	}
	want := "B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD=3 sec: not a duration; accepted: a duration such as 30, 30s, 500ms, 5m or 1h (rule agent.execution.slow"
	if !contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	t.Setenv("B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD", "1")
	t.Setenv("B2B_OTEL_RULE_SECURITY_ACCESS_VIOLATION_THRESHOLD", "1")
	if err := cfg.Validate(); err == nil || !contains(err.Error(), "an event rule has no threshold") {
		t.Errorf("an event rule's variable: %v", err)
	}
	t.Setenv("B2B_OTEL_RULE_SECURITY_ACCESS_VIOLATION_THRESHOLD", "")
	t.Setenv("B2B_OTEL_RULE_AGENT_SUCCESS_RATE_LOW_THRESHOLD", "95")
	if err := cfg.Validate(); err == nil || !contains(err.Error(), "ratio threshold") {
		t.Errorf("a ratio of 95: %v", err)
	}
}

func contains(s, sub string) bool { return len(sub) == 0 || indexOf(s, sub) >= 0 }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// The agent's router: one copy per routing key a span's window rules have, each group in a call of
// its own; the gateway judges on a copy only the window rules of its route.
func TestRouteModeAndRoutedJudging(t *testing.T) {
	agentSide := newHarnessMode(t, defaultRules(t, nil), 100, ModeRoute)
	batch := ptrace.NewTraces()
	for _, s := range []testSpan{
		login(t0, "203.0.113.9", true), login(t0, "198.51.100.2", false),
		{name: "deny", endS: t0, spanID: 9, attrs: map[string]any{"b2b.security.action": "access_denied", "user.id": "u-1"}},
		httpCall(t0, "api.example.com", true),
		{name: "plain", endS: t0, spanID: 10, attrs: map[string]any{"foo": "bar"}},
	} {
		tracesOf(s).ResourceSpans().MoveAndAppendTo(batch.ResourceSpans())
	}
	if err := (&tracesToTraces{core: agentSide.core}).ConsumeTraces(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	calls := agentSide.markers.AllTraces()
	var routes []string
	for _, td := range calls {
		if td.ResourceSpans().Len() == 0 {
			t.Fatal("empty call")
		}
		first := td.ResourceSpans().At(0).Resource().Attributes()
		route, _ := first.Get(semconv.B2BFleetRouteKey)
		group, _ := first.Get(semconv.B2BFleetGroupKey)
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			g, _ := td.ResourceSpans().At(i).Resource().Attributes().Get(semconv.B2BFleetGroupKey)
			if g.Str() != group.Str() {
				t.Errorf("one call holds two groups: %s and %s", g.Str(), group.Str())
			}
		}
		routes = append(routes, route.Str()+" "+group.Str()+fmt.Sprintf(" %d", td.SpanCount()))
	}
	want := "[client.address client.address=203.0.113.9 1 client.address client.address=198.51.100.2 1 user.id user.id=u-1 1 server.address server.address=api.example.com 1]"
	if fmt.Sprint(routes) != want {
		t.Errorf("routed copies %v\nwant %s", routes, want)
	}

	// A gateway: the copy routed by trace id judges per-span rules only, a window copy its route's
	// window rules only.
	gateway := newHarness(t, defaultRules(t, nil), 100)
	for i := range 5 {
		s := login(t0+float64(i), "203.0.113.9", false)
		s.attrs["b2b.security.action"] = "access_denied"
		s.attrs["user.id"] = "u-1"
		td := tracesOf(s)
		td.ResourceSpans().At(0).Resource().Attributes().PutStr(semconv.B2BFleetRouteKey, "trace")
		gateway.now = int64((t0 + float64(i)) * 1e9)
		_ = gateway.conn.ConsumeTraces(context.Background(), td)
	}
	if ids := gateway.ruleIDs(); fmt.Sprint(ids) != fmt.Sprint(repeatString("security.access.violation", 5)) {
		t.Errorf("trace copies fired %v, want the event rule only", ids)
	}
	gateway.sink.Reset()
	for i := range 3 {
		s := testSpan{name: "deny", endS: t0 + 10 + float64(i), spanID: 9,
			attrs: map[string]any{"b2b.security.action": "access_denied", "user.id": "u-1"}}
		td := tracesOf(s)
		attrs := td.ResourceSpans().At(0).Resource().Attributes()
		attrs.PutStr(semconv.B2BFleetRouteKey, "user.id")
		attrs.PutStr(semconv.B2BFleetGroupKey, "user.id=u-1")
		gateway.now = int64((t0 + 10 + float64(i)) * 1e9)
		_ = gateway.conn.ConsumeTraces(context.Background(), td)
	}
	recs := gateway.records()
	if len(recs) != 1 {
		t.Fatalf("window copies fired %v, want security.access.unusual once", gateway.ruleIDs())
	}
	if id, _ := recs[0].Attributes().Get(semconv.B2BRuleIDKey); id.Str() != "security.access.unusual" {
		t.Errorf("fired %s", id.Str())
	}
	res := gateway.sink.AllLogs()[0].ResourceLogs().At(0).Resource().Attributes()
	if _, ok := res.Get(semconv.B2BFleetRouteKey); ok {
		t.Errorf("record resource keeps the routing attributes: %v", res.AsRaw())
	}
}

func repeatString(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestTelemetry(t *testing.T) {
	tt := componenttest.NewTelemetry()
	defer func() { _ = tt.Shutdown(context.Background()) }()
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.MaxGroups = 2
	conn, err := f.CreateTracesToLogs(context.Background(), metadatatest.NewSettings(tt), cfg, consumertest.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Shutdown(context.Background()) }()
	for i := range 5 {
		if err := conn.ConsumeTraces(context.Background(), tracesOf(login(t0, fmt.Sprintf("10.0.0.%d", i), false))); err != nil {
			t.Fatal(err)
		}
	}
	metadatatest.AssertEqualConnectorB2bderiveSpansJudged(t, tt, []metricdata.DataPoint[int64]{{Value: 5}},
		metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualConnectorB2bderiveGroupsEvicted(t, tt, []metricdata.DataPoint[int64]{
		{Value: 3, Attributes: attribute.NewSet(attribute.String(semconv.B2BRuleIDKey, "security.login.bruteforce"))},
	}, metricdatatest.IgnoreTimestamp())
	// Two of the brute force's groups, and the group_flood group counting its evictions.
	metadatatest.AssertEqualConnectorB2bderiveGroupsTracked(t, tt, []metricdata.DataPoint[int64]{{Value: 3}},
		metricdatatest.IgnoreTimestamp())
}

// Several pipelines call ConsumeTraces at once (go test -race): a burst of failed logins from one
// address spread over goroutines fires once per window, and every span is counted.
func TestConcurrentPipelines(t *testing.T) {
	h := newHarness(t, defaultRules(t, nil), 1000)
	h.now = int64(t0 * 1e9)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				s := login(t0, "203.0.113.9", false)
				if i%2 == 0 {
					s = login(t0, fmt.Sprintf("10.1.%d.%d", g, i), false)
				}
				_ = h.conn.ConsumeTraces(context.Background(), tracesOf(s))
			}
		}()
	}
	wg.Wait()
	n := 0
	for _, id := range h.ruleIDs() {
		if id == "security.login.bruteforce" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d brute-force records from one address, want 1", n)
	}
	if len(h.markerSpans()) != len(h.records()) {
		t.Errorf("%d markers for %d records", len(h.markerSpans()), len(h.records()))
	}
}
