package b2bderive // import "github.com/b2b-otel/b2b-otel/collector/connector/b2bderive"

// Mode route, for an agent collector in front of several gateway replicas (docs/collector.md, "Two
// tiers"). A fleet window needs every span of its group on one replica, but the rules group by
// different keys (client.address, user.id, server.address, none at all ...) and the loadbalancing
// exporter routes a trace by the attributes of its first span. So the router emits, for each span a
// window rule reads, one copy per routing key of the rules it matches (b2b.fleet.route: the rules'
// group_by keys; b2b.fleet.group: the span's values of them), both as resource attributes, and sends
// each group's copies in a call of their own: the exporter, keyed on those two attributes, then sends
// every copy of one group to one replica, whose b2bderive judges on it exactly the window rules of
// its route. The original spans go to the replicas by trace id, marked b2b.fleet.route=trace.

import (
	"context"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/engine"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/rules"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/semconv"
)

// routeRules are the window rules of one routing key.
type routeRules struct {
	key   string
	rules []*rules.Rule
}

type router struct {
	routes []routeRules
}

func newRouter(windowRules []*rules.Rule) *router {
	r := &router{}
	index := map[string]int{}
	for _, rule := range windowRules {
		key := engine.RouteKey(rule)
		at, ok := index[key]
		if !ok {
			at = len(r.routes)
			index[key] = at
			r.routes = append(r.routes, routeRules{key: key})
		}
		r.routes[at].rules = append(r.routes[at].rules, rule)
	}
	return r
}

// copies are the copies of one group of one route, in one ptrace.Traces.
type copies struct {
	td     ptrace.Traces
	scopes map[[2]int]ptrace.SpanSlice // (resource, scope) of the input -> spans of the copy
	route  string
	group  string
}

func (c *core) route(ctx context.Context, td ptrace.Traces) {
	_, next := c.consumers()
	if next == nil {
		return
	}
	groups := map[string]*copies{}
	var order []*copies
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				span := ss.Spans().At(k)
				facts := engine.FactsOf(span)
				for n := range c.router.routes {
					route := &c.router.routes[n]
					rule := route.matching(&facts)
					if rule == nil {
						continue
					}
					group := groupValue(rule, facts.Attrs)
					id := route.key + "\x00" + group
					g := groups[id]
					if g == nil {
						g = &copies{td: ptrace.NewTraces(), scopes: map[[2]int]ptrace.SpanSlice{}, route: route.key, group: group}
						groups[id] = g
						order = append(order, g)
					}
					span.CopyTo(g.spans(rs, ss, i, j).AppendEmpty())
				}
			}
		}
	}
	for _, g := range order {
		if err := next.ConsumeTraces(ctx, g.td); err != nil {
			// As for derived records: the senders must not retry (the trace-routed copies went through).
			c.telemetry.ConnectorB2bderiveRecordsDropped.Add(ctx, int64(g.td.SpanCount()))
			c.logger.Warn("b2bderive: window copies dropped", zap.String("route", g.route),
				zap.Int("spans", g.td.SpanCount()), zap.Error(err))
		}
	}
}

// matching is the first rule of the route whose match holds for the span, nil when none does.
func (r *routeRules) matching(f *engine.SpanFacts) *rules.Rule {
	for _, rule := range r.rules {
		if engine.Matches(rule.Match, f) {
			return rule
		}
	}
	return nil
}

func (g *copies) spans(rs ptrace.ResourceSpans, ss ptrace.ScopeSpans, i, j int) ptrace.SpanSlice {
	if spans, ok := g.scopes[[2]int{i, j}]; ok {
		return spans
	}
	ors := g.td.ResourceSpans().AppendEmpty()
	rs.Resource().CopyTo(ors.Resource())
	ors.SetSchemaUrl(rs.SchemaUrl())
	attrs := ors.Resource().Attributes()
	attrs.PutStr(semconv.B2BFleetRouteKey, g.route)
	attrs.PutStr(semconv.B2BFleetGroupKey, g.group)
	oss := ors.ScopeSpans().AppendEmpty()
	ss.Scope().CopyTo(oss.Scope())
	oss.SetSchemaUrl(ss.SchemaUrl())
	g.scopes[[2]int{i, j}] = oss.Spans()
	return oss.Spans()
}

// groupValue is the span's group of a routing key, as text: "client.address=203.0.113.9"; keys
// joined with "|", a missing attribute with nothing after "=".
func groupValue(rule *rules.Rule, attrs pcommon.Map) string {
	var b strings.Builder
	for n, key := range rule.GroupBy {
		if n > 0 {
			b.WriteByte('|')
		}
		b.WriteString(key)
		b.WriteByte('=')
		if v, ok := attrs.Get(key); ok {
			b.WriteString(v.AsString())
		}
	}
	return b.String()
}
