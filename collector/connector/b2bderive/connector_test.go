package b2bderive

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/engine"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/metadata"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/rules"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/semconv"
)

func agent(endS, duration float64, derived bool) testSpan {
	return testSpan{
		name: "invoke_agent data_integration_agent", endS: endS, duration: duration, derived: derived, spanID: 1,
		attrs: map[string]any{"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "data_integration_agent"},
	}
}

func login(endS float64, address string, derived bool) testSpan {
	return testSpan{
		name: "login", endS: endS, duration: 0.01, derived: derived, spanID: 2,
		attrs: map[string]any{"b2b.security.action": "login", "event.outcome": "failure", "client.address": address},
	}
}

func httpCall(endS float64, server string, failed bool) testSpan {
	status := ptrace.StatusCodeUnset
	if failed {
		status = ptrace.StatusCodeError
	}
	return testSpan{
		name: "GET", kind: ptrace.SpanKindClient, status: status, endS: endS, duration: 0.1, spanID: 3,
		attrs: map[string]any{"http.request.method": "GET", "server.address": server},
	}
}

func repeat(n int, span func(i int) testSpan) []testSpan {
	out := make([]testSpan, n)
	for i := range out {
		out[i] = span(i)
	}
	return out
}

func TestRulesFireByKind(t *testing.T) {
	tests := []struct {
		name  string
		spans []testSpan
		want  []string
	}{
		{"latency over the threshold fires", []testSpan{agent(t0, 4.1, false)}, []string{"agent.execution.slow"}},
		{"latency at the threshold does not fire (gt)", []testSpan{agent(t0, 3, false)}, nil},
		{"latency over both limits fires both rules, in file order", []testSpan{agent(t0, 301, false)},
			[]string{"agent.execution.critical", "agent.execution.slow"}},
		{"a span the Python layer judged is left alone by per-span rules", []testSpan{agent(t0, 4.1, true)}, nil},
		{"latency needs the match", []testSpan{{name: "x", endS: t0, duration: 400, attrs: map[string]any{"gen_ai.operation.name": "chat"}}}, nil},
		{"event fires per matching span", []testSpan{
			{name: "deny", endS: t0, attrs: map[string]any{"b2b.security.action": "access_denied", "user.id": "u-1"}},
		}, []string{"security.access.violation"}},
		{"event with non_empty: an empty list does not match", []testSpan{
			{name: "grant", endS: t0, attrs: map[string]any{"b2b.security.action": "privilege_change", "b2b.roles.granted": []any{}}},
		}, nil},
		{"event with non_empty: granted roles match", []testSpan{
			{name: "grant", endS: t0, attrs: map[string]any{"b2b.security.action": "privilege_change", "b2b.roles.granted": []any{"admin"}}},
		}, []string{"security.privilege.escalation"}},
		{"gauge from a span attribute under the threshold fires", []testSpan{
			{name: "step", endS: t0, attrs: map[string]any{"b2b.data_quality.score": 0.72}},
		}, []string{"workflow.data_quality.low"}},
		{"gauge ignores a non-numeric value", []testSpan{
			{name: "step", endS: t0, attrs: map[string]any{"b2b.data_quality.score": "0.72"}},
		}, nil},
		{"gauge ignores a span the Python layer judged", []testSpan{
			{name: "step", endS: t0, derived: true, attrs: map[string]any{"b2b.data_quality.score": 0.1}},
		}, nil},
		{"count fires at the threshold, once per window", repeat(7, func(i int) testSpan { return login(t0+float64(i), "203.0.113.9", false) }),
			[]string{"security.login.bruteforce"}},
		{"count runs on spans the Python layer judged (fleet-wide)", repeat(5, func(i int) testSpan { return login(t0+float64(i), "203.0.113.9", true) }),
			[]string{"security.login.bruteforce"}},
		{"count keeps one window per group", append(
			repeat(4, func(i int) testSpan { return login(t0+float64(i), "203.0.113.9", false) }),
			repeat(4, func(i int) testSpan { return login(t0+10+float64(i), "198.51.100.7", false) })...), nil},
		{"count forgets what left the window", append(
			repeat(4, func(i int) testSpan { return login(t0+float64(i), "203.0.113.9", false) }),
			login(t0+400, "203.0.113.9", false)), nil},
		{"count fires again in the next window", append(
			repeat(5, func(i int) testSpan { return login(t0+float64(i), "203.0.113.9", false) }),
			repeat(5, func(i int) testSpan { return login(t0+310+float64(i), "203.0.113.9", false) })...),
			[]string{"security.login.bruteforce", "security.login.bruteforce"}},
		{"ratio waits for min_samples", repeat(19, func(i int) testSpan { return httpCall(t0+float64(i), "crm.example", true) }), nil},
		{"ratio fires once the window holds min_samples and the share compares", repeat(25, func(i int) testSpan {
			return httpCall(t0+float64(i), "crm.example", i%10 == 0)
		}), []string{"external.api.unavailable"}},
		{"ratio under the threshold stays quiet", repeat(40, func(i int) testSpan {
			return httpCall(t0+float64(i), "crm.example", i == 0)
		}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, defaultRules(t, nil), engine.DefaultMaxGroups)
			h.feed(tt.spans...)
			if got := h.ruleIDs(); !slices.Equal(got, tt.want) {
				t.Errorf("fired %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRecordCarriesTheAttributesOfSpecSection5(t *testing.T) {
	h := newHarness(t, defaultRules(t, nil), engine.DefaultMaxGroups)
	h.feed(repeat(5, func(i int) testSpan { return login(t0+float64(i), "203.0.113.9", true) })...)
	logs := h.sink.AllLogs()
	if len(logs) != 1 || logs[0].LogRecordCount() != 1 {
		t.Fatalf("want one record, got %d batches", len(logs))
	}
	rl := logs[0].ResourceLogs().At(0)
	if v, _ := rl.Resource().Attributes().Get("service.name"); v.Str() != "checkout" {
		t.Errorf("resource service.name = %q, want the span's", v.Str())
	}
	if _, ok := rl.Resource().Attributes().Get(semconv.B2BDerivedKey); ok {
		t.Error("the record's resource must not claim b2b.derived: the connector made it")
	}
	if got := rl.ScopeLogs().At(0).Scope().Name(); got != metadata.ScopeName {
		t.Errorf("scope %q", got)
	}
	lr := rl.ScopeLogs().At(0).LogRecords().At(0)
	if lr.EventName() != semconv.EventB2BSecurityEvent || lr.SeverityNumber() != plog.SeverityNumber(21) || lr.SeverityText() != "CRITICAL" {
		t.Errorf("event %q severity %d %q", lr.EventName(), lr.SeverityNumber(), lr.SeverityText())
	}
	if lr.SpanID()[7] != 2 || lr.TraceID()[15] != 2 {
		t.Errorf("trace/span id not the triggering span's: %s %s", lr.TraceID(), lr.SpanID())
	}
	if int64(lr.Timestamp()) != int64((t0+4)*1e9) {
		t.Errorf("timestamp %d", lr.Timestamp())
	}
	want := map[string]any{
		"b2b.rule.id": "security.login.bruteforce", "b2b.alert.severity": "critical", "b2b.alert.tier": "security",
		"b2b.alert.respond_within_s": int64(300), "b2b.observed.value": 5.0, "b2b.threshold.value": 5.0,
		"b2b.scope": "fleet", "client.address": "203.0.113.9", "event.category": "authentication",
		"event.type": "start", "event.outcome": "failure", "ocsf.class_uid": int64(3002), "ocsf.activity_id": int64(1),
	}
	got := lr.Attributes().AsRaw()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("extra attributes: %v", got)
	}
	if body := lr.Body().Str(); body != "5 matching events within 300s (client.address=203.0.113.9)" {
		t.Errorf("body %q", body)
	}
}

func TestRecordsCarryTheContextOfTheTriggeringSpanAsThePythonLayer(t *testing.T) {
	withContext := func(s testSpan) testSpan {
		attrs := map[string]any{"b2b.tenant.id": "acme", "user.id": "u-1", "session.id": "s-1"}
		for k, v := range s.attrs {
			attrs[k] = v
		}
		s.attrs = attrs
		return s
	}
	h := newHarness(t, defaultRules(t, nil), engine.DefaultMaxGroups)
	h.feed(withContext(agent(t0, 4, false)))                                                                        // latency: per span
	h.feed(repeat(5, func(i int) testSpan { return withContext(login(t0+1+float64(i), "203.0.113.9", false)) })...) // count: a window
	context := map[string]map[string]any{}
	for _, lr := range h.records() {
		raw := lr.Attributes().AsRaw()
		got := map[string]any{}
		for _, key := range []string{"b2b.tenant.id", "user.id", "session.id"} {
			if v, ok := raw[key]; ok {
				got[key] = v
			}
		}
		context[raw["b2b.rule.id"].(string)] = got
	}
	perSpan := map[string]any{"b2b.tenant.id": "acme", "user.id": "u-1", "session.id": "s-1"}
	if got := context["agent.execution.slow"]; fmt.Sprint(got) != fmt.Sprint(perSpan) {
		t.Errorf("per-span record context %v, want %v", got, perSpan)
	}
	if got := context["security.login.bruteforce"]; fmt.Sprint(got) != fmt.Sprint(map[string]any{"b2b.tenant.id": "acme"}) {
		t.Errorf("window record context %v, want the tenant only", got)
	}
}

func TestThresholdOverridesApply(t *testing.T) {
	h := newHarness(t, defaultRules(t, map[string]any{"agent.execution.slow": "0.5s"}), engine.DefaultMaxGroups)
	h.feed(agent(t0, 1, false))
	if got := h.ruleIDs(); !slices.Equal(got, []string{"agent.execution.slow"}) {
		t.Errorf("fired %v", got)
	}
}

func TestAttributeEqualityFollowsThePythonEngine(t *testing.T) {
	rulesWith := func(equals string) *rules.Set {
		set, err := rules.Parse([]byte("version: 1\nrules:\n  - {id: e, kind: event, severity: info, tier: operations, description: d, match: [{attribute: k, equals: "+equals+"}]}\n"), "f")
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	tests := []struct {
		name   string
		equals string
		value  any
		fires  bool
	}{
		{"string", "login", "login", true},
		{"other string", "login", "logout", false},
		{"int and float", "5", 5.0, true},
		{"boolean false", "false", false, true},
		{"boolean true against a string", "true", "yes", true}, // truthiness, as in Python
		{"string false is not boolean false", "\"false\"", false, false},
		{"int against its text", "\"5\"", int64(5), false}, // the string index wants a string value
		{"float against its int text", "5", "5", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, rulesWith(tt.equals), 10)
			h.feed(testSpan{name: "s", endS: t0, attrs: map[string]any{"k": tt.value}})
			if got := h.sink.LogRecordCount() == 1; got != tt.fires {
				t.Errorf("fired=%v, want %v", got, tt.fires)
			}
		})
	}
}

func TestDisabledAndMetricGaugeRulesAreNotEvaluated(t *testing.T) {
	set, err := rules.Parse([]byte(`version: 1
rules:
  - {id: a.slow, kind: latency, severity: info, tier: operations, description: d, match: [{span_name_prefix: a}], threshold: 1, enabled: false}
  - {id: q.depth, kind: gauge, severity: info, tier: operations, description: d, source: {metric: q}, threshold: 1, comparison: gt}
`), "inline")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, set, engine.DefaultMaxGroups)
	if n := h.core.engine.SpanRules(); n != 0 {
		t.Errorf("%d rules evaluated, want none", n)
	}
	h.feed(testSpan{name: "a", endS: t0, duration: 5, attrs: map[string]any{"q": 50}})
	if n := h.sink.LogRecordCount(); n != 0 {
		t.Errorf("%d records", n)
	}
}

func TestWindowGroupsAreBoundedLeastSuspiciousFirst(t *testing.T) {
	h := newHarness(t, defaultRules(t, nil), 3)
	// Four failures from .1, then a flood of other addresses with one failure each...
	h.feed(repeat(4, func(i int) testSpan { return login(t0+float64(i), "10.0.0.1", false) })...)
	h.feed(repeat(30, func(i int) testSpan { return login(t0+10, fmt.Sprintf("10.0.1.%d", i), false) })...)
	// ...evicts them, never .1, so its fifth failure fires.
	h.feed(login(t0+11, "10.0.0.1", false))
	if got := idsOf(h.records()); len(got) != 1 || got[0] != semconv.RuleSecurityLoginBruteforce {
		t.Errorf("records %v, want the brute force of 10.0.0.1", got)
	}
	if got := h.core.engine.Evicted(); got != 30-2 {
		t.Errorf("evicted %d, want 28", got)
	}
	// security.login.bruteforce keeps max_groups groups; security.rules.group_flood one per evicting rule.
	if got := h.core.engine.TrackedGroups(); got != 3+1 {
		t.Errorf("tracked %d groups, want 4", got)
	}
}

func TestConcurrentConsumersShareTheFleetWindow(t *testing.T) {
	h := newHarness(t, defaultRules(t, nil), engine.DefaultMaxGroups)
	h.now = int64(t0 * 1e9)
	var wg sync.WaitGroup
	for replica := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2 {
				span := login(t0, "192.0.2.1", true)
				span.spanID = byte(replica*2 + i)
				if err := h.conn.ConsumeTraces(context.Background(), tracesOf(span)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	// 16 failures across 8 "replicas", each below the per-process threshold: one fleet record.
	if got := h.ruleIDs(); !slices.Equal(got, []string{"security.login.bruteforce"}) {
		t.Errorf("fired %v", got)
	}
}

func TestFactoryCreatesATracesToLogsConnector(t *testing.T) {
	f := NewFactory()
	if f.Type().String() != "b2bderive" {
		t.Fatalf("type %s", f.Type())
	}
	cfg := f.CreateDefaultConfig().(*Config)
	if cfg.MaxGroups != 10000 || cfg.RulesFile != "" {
		t.Errorf("default config %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sink := new(consumertest.LogsSink)
	conn, err := f.CreateTracesToLogs(context.Background(), connectortest.NewNopSettings(f.Type()), cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	if err := conn.ConsumeTraces(context.Background(), tracesOf(agent(t0, 10, false))); err != nil {
		t.Fatal(err)
	}
	if sink.LogRecordCount() != 1 {
		t.Errorf("%d records, want agent.execution.slow", sink.LogRecordCount())
	}
	if err := conn.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
