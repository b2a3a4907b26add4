package rules

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/semconv"
)

func TestBuiltInRulesLoad(t *testing.T) {
	rules, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules.Rules) != len(semconv.RuleIDs()) {
		t.Fatalf("%d rules, want the %d of the registry (SPEC section 5 and issue 9's group flood)",
			len(rules.Rules), len(semconv.RuleIDs()))
	}
	slow := rules.Rules[1]
	if slow.ID != "agent.execution.slow" || slow.Threshold != 3 || slow.Event != semconv.EventB2BSLABreach {
		t.Errorf("%+v", slow)
	}
	for _, r := range rules.Rules {
		if r.Tier == "security" && r.Event != semconv.EventB2BSecurityEvent {
			t.Errorf("%s: security rules emit %s by default", r.ID, semconv.EventB2BSecurityEvent)
		}
	}
}

// The embedded copy must be the Python layer's file, byte for byte: both engines read "the" rules.
func TestEmbeddedRulesMatchPython(t *testing.T) {
	python, err := os.ReadFile("../../../../../b2b_otel/rules/default_rules.yaml")
	if os.IsNotExist(err) {
		t.Skip("b2b_otel/rules/default_rules.yaml not found (the collector module outside its repository)")
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(python, defaultRulesYAML) {
		t.Fatal("collector/connector/b2bderive/internal/rules/default_rules.yaml differs from b2b_otel/rules/default_rules.yaml: copy it over")
	}
}

func TestRulesFileProblems(t *testing.T) {
	head := "version: 1\nrules:\n"
	rule := func(extra string) string {
		return head + "  - id: x.slow\n    kind: latency\n    severity: warning\n    tier: operations\n    description: d\n" +
			"    match: [{span_name_prefix: a}]\n" + extra
	}
	tests := []struct {
		name string
		text string
		want string
	}{
		{"not YAML", "version: [1", "f.yaml: not valid YAML"},
		{"wrong version", "version: 2\nrules: []\n", "f.yaml:1: version=2: accepted: 1"},
		{"missing rules", "version: 1\n", "rules=(missing): required field is missing"},
		{"unknown top-level key", head + "extra: 1\n", "f.yaml:3: extra=1: unknown field; accepted: version, rules"},
		{"duplicate key", rule("    threshold: 3s\n    threshold: 4s\n"), "f.yaml:10: rules[0].threshold: duplicate key"},
		{"misspelt field", rule("    threshold: 3s\n    severty: info\n"), "f.yaml:10: rules[0].severty=info: unknown field"},
		{"bad kind", strings.Replace(rule("    threshold: 3s\n"), "latency", "slowness", 1), "f.yaml:4: rules[0].kind=slowness: accepted: latency, ratio, count, event, gauge"},
		{"bad id", strings.Replace(rule("    threshold: 3s\n"), "x.slow", "X-Slow", 1), "rules[0].id=X-Slow: lower-case words"},
		{"latency threshold not a duration", rule("    threshold: 3 sec\n"), "f.yaml:9: rules[0].threshold=3 sec: not a duration"},
		{"latency threshold zero", rule("    threshold: 0\n"), "rules[0].threshold=0: must be greater than zero"},
		{"latency missing threshold", rule(""), "rules[0].threshold=(missing): required for a latency rule"},
		{"latency refuses lt", rule("    threshold: 3s\n    comparison: lt\n"), "rules[0].comparison=lt: a latency rule fires on slow spans; accepted: gt, gte"},
		{"latency refuses a window", rule("    threshold: 3s\n    window: 5m\n"), "f.yaml:10: rules[0].window: not used by a latency rule; it takes threshold, comparison"},
		{"condition with two forms", strings.Replace(rule("    threshold: 3s\n"), "{span_name_prefix: a}", "{span_name_prefix: a, status: error}", 1), "a condition has exactly one form"},
		{"condition test without attribute", strings.Replace(rule("    threshold: 3s\n"), "{span_name_prefix: a}", "{equals: a}", 1), "rules[0].match[0].attribute: equals needs an attribute"},
		{"non_empty false", strings.Replace(rule("    threshold: 3s\n"), "{span_name_prefix: a}", "{attribute: k, non_empty: false}", 1), "only non_empty: true is meaningful"},
		{"bad span kind", strings.Replace(rule("    threshold: 3s\n"), "{span_name_prefix: a}", "{span_kind: sideways}", 1), "rules[0].match[0].span_kind=sideways: accepted: internal, server"},
		{"quoted number threshold", head + "  - {id: r, kind: ratio, severity: info, tier: operations, description: d, match: [{status: error}], failure: [{status: error}], threshold: \"0.9\", comparison: gt, window: 1h, min_samples: 5}\n",
			"rules[0].threshold=0.9: a ratio threshold is a number"},
		{"ratio share above 1", head + "  - {id: r, kind: ratio, severity: info, tier: operations, description: d, match: [{status: error}], failure: [{status: error}], threshold: 95, comparison: gt, window: 1h, min_samples: 5}\n",
			"a ratio threshold is a share between 0 and 1"},
		{"count not whole", head + "  - {id: c, kind: count, severity: info, tier: operations, description: d, match: [{status: error}], threshold: 2.5, comparison: gte, window: 1m}\n",
			"a count threshold is a whole number of spans, at least 1"},
		{"event refuses a threshold", head + "  - {id: e, kind: event, severity: info, tier: security, description: d, match: [{status: error}], threshold: 1}\n",
			"rules[0].threshold: not used by a event rule"},
		{"event needs a match", head + "  - {id: e, kind: event, severity: info, tier: security, description: d}\n",
			"a event rule needs at least one match condition"},
		{"gauge with two sources", head + "  - {id: g, kind: gauge, severity: info, tier: operations, description: d, source: {metric: m, span_attribute: a}, threshold: 1, comparison: gt}\n",
			"a source has exactly one of span_attribute"},
		{"metric gauge matching span names", head + "  - {id: g, kind: gauge, severity: info, tier: operations, description: d, match: [{span_name_prefix: x}], source: {metric: m}, threshold: 1, comparison: gt}\n",
			"a metric gauge matches data point attributes only"},
		{"duplicate ids", head + "  - {id: e, kind: event, severity: info, tier: security, description: d, match: [{status: error}]}\n" +
			"  - {id: e, kind: event, severity: info, tier: security, description: d, match: [{status: error}]}\n",
			"f.yaml:4: rules[1].id=e: duplicate rule id (first at rules[0])"},
		{"bad event name", head + "  - {id: e, kind: event, severity: info, tier: security, description: d, match: [{status: error}], event: b2b.other}\n",
			"rules[0].event=b2b.other: accepted: b2b.sla.breach, b2b.security.event"},
		{"ids sharing an override variable", head + "  - {id: a.b_c, kind: event, severity: info, tier: security, description: d, match: [{status: error}]}\n" +
			"  - {id: a_b.c, kind: event, severity: info, tier: security, description: d, match: [{status: error}]}\n",
			"B2B_OTEL_RULE_A_B_C_THRESHOLD: rule ids \"a.b_c\" and \"a_b.c\" share this override variable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := Parse([]byte(tt.text), "f.yaml")
			if err == nil {
				err = applyOverrides(rules, nil)
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error\n%s\ndoes not say %q", err, tt.want)
			}
		})
	}
}

func TestDurations(t *testing.T) {
	for text, want := range map[string]float64{"30": 30, "30s": 30, "500ms": 0.5, "5m": 300, "1h": 3600, "0.5": 0.5, " 2s ": 2} {
		got, msg := parseDuration(text)
		if msg != "" || got != want {
			t.Errorf("%q: %v %s, want %v", text, got, msg, want)
		}
	}
	for _, text := range []string{"3 sec", "-1s", "1d", "", "0s"} {
		if _, msg := parseDuration(text); msg == "" {
			t.Errorf("%q accepted", text)
		}
	}
}
