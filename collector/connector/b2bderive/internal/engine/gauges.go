package engine // import "github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/engine"

// Gauge rules on sampled values (engine.py judge_gauge): a metric's data point, or a value computed
// from several (pool_utilisation), is compared with the threshold per group, and the rule fires when
// the group enters the breaching state, not on every sample while it stays there.

import (
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/rules"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/semconv"
)

// gaugeState is one gauge rule and whether each of its groups is breaching now. Groups are bounded
// like the Python engine's: past maxGroups the first group ever stored is forgotten.
type gaugeState struct {
	rule      *rules.Rule
	breaching map[string]bool
	order     []string // keys in insertion order, for the eviction of the oldest
}

func newGaugeState(r *rules.Rule) *gaugeState {
	return &gaugeState{rule: r, breaching: map[string]bool{}}
}

// GaugeRules is how many enabled gauge rules read sampled metrics (source metric or computed).
func (e *Engine) GaugeRules() int { return len(e.gauges) }

// ReadsGauge says whether a gauge rule reads source (a metric name or a computed source).
func (e *Engine) ReadsGauge(source string) bool {
	for _, g := range e.gauges {
		if g.rule.Source.Metric == source || g.rule.Source.Computed == source {
			return true
		}
	}
	return false
}

// JudgeGauge judges a sampled value of source (a metric name, or the computed pool_utilisation)
// with the attributes of its data point; the firings carry no trace. attrs is only read.
func (e *Engine) JudgeGauge(source string, value float64, attrs pcommon.Map) []Firing {
	var out []Firing
	facts := &SpanFacts{Kind: rules.SpanKindInternal, Status: rules.StatusUnset, Attrs: attrs}
	now := e.clock()
	for _, g := range e.gauges {
		r := g.rule
		if r.Source.Metric != source && r.Source.Computed != source {
			continue
		}
		if !matches(r.Match, facts) {
			continue
		}
		key := groupKey(r, attrs)
		breaching := compare(value, r.Comparison, r.Threshold)
		e.mu.Lock()
		was := g.breaching[key]
		if breaching != was {
			if _, known := g.breaching[key]; !known {
				if len(g.breaching) >= e.maxGroups {
					g.forgetOldest()
				}
				g.order = append(g.order, key)
			}
			g.breaching[key] = breaching
		}
		e.mu.Unlock()
		if breaching && !was {
			out = append(out, Firing{Rule: r, Observed: value, Threshold: r.Threshold,
				Group: groupOf(r, attrs), AtNanos: now, Facts: facts})
		}
	}
	return out
}

func (g *gaugeState) forgetOldest() {
	for len(g.order) > 0 {
		oldest := g.order[0]
		g.order = g.order[1:]
		if _, ok := g.breaching[oldest]; ok {
			delete(g.breaching, oldest)
			return
		}
	}
}

// PoolUtilisation is the computed source of db.pool.exhaustion.
const PoolUtilisation = "pool_utilisation"

// isPoolMetric names the metrics pool_utilisation is computed from.
func isPoolMetric(name string) bool {
	return name == semconv.MetricDBClientConnectionCount || name == semconv.MetricDBClientConnectionMax
}

// IsPoolMetric says whether a metric is one pool_utilisation is computed from.
func IsPoolMetric(name string) bool { return isPoolMetric(name) }
