package engine

import (
	"testing"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/rules"
)

func TestPythonFloorDivision(t *testing.T) {
	for _, tc := range []struct{ a, b float64 }{{1764400000.01, 5}, {1764400030.01, 5}, {10, 5}, {0.3, 0.1}, {7, 0.5}} {
		got := pyFloorDiv(tc.a, tc.b)
		if float64(got) > tc.a/tc.b+1 || float64(got) < tc.a/tc.b-1 {
			t.Errorf("%v // %v = %d", tc.a, tc.b, got)
		}
	}
	// Python: 0.3 // 0.1 == 2.0 (whereas floor(0.3 / 0.1) == 3).
	if got := pyFloorDiv(0.3, 0.1); got != 2 {
		t.Errorf("0.3 // 0.1 = %d, want 2 as in Python", got)
	}
}

func TestOnlyEnabledRulesThatReadSpansAreJudged(t *testing.T) {
	set, err := rules.Parse([]byte(`version: 1
rules:
  - {id: a.slow, kind: latency, severity: info, tier: operations, description: d, match: [{span_name_prefix: a}], threshold: 1, enabled: false}
  - {id: q.depth, kind: gauge, severity: info, tier: operations, description: d, source: {metric: q}, threshold: 1, comparison: gt}
  - {id: s.score, kind: gauge, severity: info, tier: operations, description: d, source: {span_attribute: s}, threshold: 1, comparison: lt}
`), "inline")
	if err != nil {
		t.Fatal(err)
	}
	e := New(set, DefaultMaxGroups, func() int64 { return 0 })
	if got := e.SpanRules(); got != 1 {
		t.Errorf("%d span rules, want only the span-attribute gauge", got)
	}
}
