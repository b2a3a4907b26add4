// Package engine judges spans against a rules.Set: the Go twin of b2b_otel/rules/engine.py, held
// to the same conformance vectors. Per-span rules (latency, event, span-attribute gauge) are
// stateless; window rules (ratio, count) keep per-group counters in 60 fixed buckets per window, the
// number of groups per rule bounded. As in the Python engine, bounded memory is not a blind spot: the
// least suspicious group is evicted first (groups.go), a count rule remembers its evicted groups'
// counts in a count-min sketch, and every eviction is judged as a fact b2b.security.action=
// group_eviction (rule security.rules.group_flood). Only the window update takes the lock: an Engine
// may be called from several goroutines at once.
package engine // import "github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/engine"

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/rules"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/semconv"
)

// DefaultMaxGroups is the default bound on the groups each window rule keeps.
const DefaultMaxGroups = 10000

const bucketsPerWindow = 60

// SpanFacts is what the engine needs of a span; Attrs is the span's own attribute map (not a copy).
type SpanFacts struct {
	Name      string
	Kind      string // a rules.SpanKind value
	Status    string // a rules.Status value
	DurationS float64
	Attrs     pcommon.Map
	TraceID   pcommon.TraceID
	SpanID    pcommon.SpanID
}

var spanKindNames = map[ptrace.SpanKind]string{
	// OTel treats an unspecified kind as internal; so does the Python conformance runner.
	ptrace.SpanKindUnspecified: rules.SpanKindInternal,
	ptrace.SpanKindInternal:    rules.SpanKindInternal,
	ptrace.SpanKindServer:      rules.SpanKindServer,
	ptrace.SpanKindClient:      rules.SpanKindClient,
	ptrace.SpanKindProducer:    rules.SpanKindProducer,
	ptrace.SpanKindConsumer:    rules.SpanKindConsumer,
}

var statusNames = map[ptrace.StatusCode]string{
	ptrace.StatusCodeUnset: rules.StatusUnset,
	ptrace.StatusCodeOk:    rules.StatusOK,
	ptrace.StatusCodeError: rules.StatusError,
}

// FactsOf reads the facts of a span once, for all the rules.
func FactsOf(span ptrace.Span) SpanFacts {
	start, end := int64(span.StartTimestamp()), int64(span.EndTimestamp())
	if end < start {
		end = start
	}
	kind, ok := spanKindNames[span.Kind()]
	if !ok {
		kind = rules.SpanKindInternal
	}
	status, ok := statusNames[span.Status().Code()]
	if !ok {
		status = rules.StatusUnset
	}
	return SpanFacts{
		Name:      span.Name(),
		Kind:      kind,
		Status:    status,
		DurationS: float64(end-start) / 1e9,
		Attrs:     span.Attributes(),
		TraceID:   span.TraceID(),
		SpanID:    span.SpanID(),
	}
}

// GroupValue is one group_by attribute of a firing, as found on the span.
type GroupValue struct {
	Key   string
	Value pcommon.Value
}

// Firing is a rule that fired on a span.
type Firing struct {
	Rule      *rules.Rule
	Observed  float64
	Threshold float64
	Group     []GroupValue // the rule's group_by attributes the span has, in group_by order
	AtNanos   int64        // the engine's clock when the span was judged
	Facts     *SpanFacts
}

type window struct {
	totals, hits    [bucketsPerWindow]int64
	epoch           int64 // absolute bucket number of the newest bucket; -1 before the first span
	suppressedUntil float64
	key             string
	score           int64 // hits when last seen (how suspicious); -1 until placed
	prior           int64 // hits given back from the memory of evicted groups at creation
	recent, ranked  *entry
}

func newWindow(key string) *window {
	return &window{epoch: -1, suppressedUntil: math.Inf(-1), key: key, score: -1}
}

func (w *window) add(bucket int64, hit bool) {
	w.advance(bucket)
	slot := bucket % bucketsPerWindow
	w.totals[slot]++
	if hit {
		w.hits[slot]++
	}
}

func (w *window) advance(bucket int64) {
	if w.epoch < 0 {
		w.epoch = bucket
		return
	}
	if bucket <= w.epoch {
		return
	}
	steps := min(bucket-w.epoch, bucketsPerWindow)
	for offset := int64(1); offset <= steps; offset++ {
		slot := (w.epoch + offset) % bucketsPerWindow
		w.totals[slot], w.hits[slot] = 0, 0
	}
	w.epoch = bucket
}

func (w *window) sums() (total, hits int64) {
	for i := range w.totals {
		total += w.totals[i]
		hits += w.hits[i]
	}
	return total, hits
}

// ruleState is a rule and, for window rules, its groups and the memory of its evicted groups.
type ruleState struct {
	rule *rules.Rule
	// Like the Python engine's index: a rule whose first equals condition expects a string is only a
	// candidate for spans whose attribute is that very string.
	indexAttr  string
	indexValue string
	indexed    bool
	groups     *groups
	ghosts     *ghosts // created at the rule's first eviction
	// The bucket of the last time seen (under Engine.mu): a batch's spans share one clock reading,
	// and the float floor division is not free.
	lastNow, lastBucket int64
	bucketKnown         bool
}

// evictionPlan is a rule that judges the evictions of one rule, with its group (fixed per evicting rule).
type evictionPlan struct {
	st  *ruleState
	key string
}

// Engine judges spans against the enabled span rules of a rules.Set.
type Engine struct {
	rules     []*ruleState
	maxGroups int
	clock     func() int64 // nanoseconds since the epoch
	// The facts of an eviction by each rule (read-only maps) and the rules judging them.
	evictionFacts map[string]*SpanFacts
	evictionPlans map[string][]evictionPlan

	// The gauge rules on sampled metrics (source metric or computed), judged by JudgeGauge.
	gauges []*gaugeState
	// onEvict, when set, is told the rule id of every eviction (under mu: it must be quick).
	onEvict func(ruleID string)

	mu      sync.Mutex // guards the windows of every rule, the gauges' states and evicted
	evicted uint64
}

// Selection says which of its rules Judge applies to a span.
type Selection struct {
	// PerSpan: latency, event and span-attribute gauge rules (false for a span the Python layer
	// already judged, or for a window copy).
	PerSpan bool
	// Windows: ratio and count rules (false for a copy routed by trace id whose window copies are
	// judged where their group is owned).
	Windows bool
	// Route, when Routed, limits the window rules to those whose RouteKey is Route (a window copy
	// an agent collector sent for exactly those rules).
	Route  string
	Routed bool
}

// All is the selection of a span from a sender: every rule.
var All = Selection{PerSpan: true, Windows: true}

// RouteKey is the routing key of a window rule: its group_by keys, comma-separated; the rules of one
// key share their groups, so one gateway replica can own all of them.
func RouteKey(r *rules.Rule) string { return strings.Join(r.GroupBy, ",") }

// IsWindow says whether a rule keeps windows (ratio, count).
func IsWindow(r *rules.Rule) bool {
	return r.Kind == semconv.RuleKindRatio || r.Kind == semconv.RuleKindCount
}

// New returns an engine for the enabled rules of set that read spans; window rules keep at most
// maxGroups groups each, and clock gives the time in nanoseconds since the epoch.
func New(set *rules.Set, maxGroups int, clock func() int64) *Engine {
	e := &Engine{maxGroups: maxGroups, clock: clock}
	for _, r := range set.Rules {
		if !r.Enabled {
			continue
		}
		if !r.ReadsSpans() {
			// Metric and computed gauges read sampled metrics (JudgeGauge).
			e.gauges = append(e.gauges, newGaugeState(r))
			continue
		}
		st := &ruleState{rule: r, groups: newGroups()}
		for _, c := range r.Match {
			if c.Form == rules.FormEquals {
				if s, ok := c.Equals.(string); ok {
					st.indexAttr, st.indexValue, st.indexed = c.Attribute, s, true
				}
				break
			}
		}
		e.rules = append(e.rules, st)
	}
	e.planEvictions()
	return e
}

// planEvictions works out, per window rule, the fact of one of its evictions and which rules match it.
func (e *Engine) planEvictions() {
	e.evictionFacts = map[string]*SpanFacts{}
	e.evictionPlans = map[string][]evictionPlan{}
	for _, evicting := range e.rules {
		r := evicting.rule
		if r.Kind != semconv.RuleKindRatio && r.Kind != semconv.RuleKindCount {
			continue
		}
		attrs := pcommon.NewMap()
		attrs.PutStr(semconv.B2BSecurityActionKey, semconv.B2BSecurityActionGroupEviction)
		attrs.PutStr(semconv.B2BFloodRuleIDKey, r.ID)
		f := &SpanFacts{Name: semconv.B2BSecurityActionGroupEviction, Kind: rules.SpanKindInternal,
			Status: rules.StatusUnset, Attrs: attrs}
		e.evictionFacts[r.ID] = f
		for _, st := range e.rules {
			if st.rule.Kind == semconv.RuleKindCount && matches(st.rule.Match, f) {
				e.evictionPlans[r.ID] = append(e.evictionPlans[r.ID], evictionPlan{st, groupKey(st.rule, attrs)})
			}
		}
	}
}

// SpanRules is how many rules the engine judges spans with (the enabled rules that read spans).
func (e *Engine) SpanRules() int { return len(e.rules) }

// Judge returns every firing a span causes, in rules file order; perSpan=false leaves out latency,
// event and gauge rules (a span the Python layer already judged).
func (e *Engine) Judge(f *SpanFacts, sel Selection) []Firing { return e.JudgeAt(f, sel, e.clock()) }

// JudgeAt is Judge with the clock read by the caller (nanoseconds since the epoch), e.g. once for a
// batch of spans consumed together.
func (e *Engine) JudgeAt(f *SpanFacts, sel Selection, now int64) []Firing {
	var out []Firing
	var evictions []string
	for _, st := range e.rules {
		r := st.rule
		if windowed := IsWindow(r); windowed {
			if !sel.Windows || (sel.Routed && RouteKey(r) != sel.Route) {
				continue
			}
		} else if !sel.PerSpan {
			continue
		}
		if st.indexed {
			v, ok := f.Attrs.Get(st.indexAttr)
			if !ok || v.Type() != pcommon.ValueTypeStr || v.Str() != st.indexValue {
				continue
			}
		}
		if !matches(r.Match, f) {
			continue
		}
		var observed float64
		fired := false
		switch r.Kind {
		case semconv.RuleKindLatency:
			observed, fired = f.DurationS, compare(f.DurationS, r.Comparison, r.Threshold)
		case semconv.RuleKindEvent:
			observed, fired = 1, true
		case semconv.RuleKindGauge:
			if v, ok := f.Attrs.Get(r.Source.SpanAttribute); ok {
				if x, numeric := number(v); numeric {
					observed, fired = x, compare(x, r.Comparison, r.Threshold)
				}
			}
		case semconv.RuleKindRatio:
			observed, fired = e.judgeRatio(st, f, now, &evictions)
		case semconv.RuleKindCount:
			observed, fired = e.judgeCount(st, f, now, &evictions)
		}
		if fired {
			out = append(out, Firing{
				Rule: r, Observed: observed, Threshold: r.Threshold,
				Group: groupOf(r, f.Attrs), AtNanos: now, Facts: f,
			})
		}
	}
	return append(out, e.judgeEvictions(evictions, f, now)...)
}

// judgeEvictions counts each eviction the span caused as a fact of its own, in the count rules that
// match it (security.rules.group_flood); evictions of those rules' own groups are not judged again.
func (e *Engine) judgeEvictions(evictions []string, cause *SpanFacts, now int64) []Firing {
	var out []Firing
	for _, ruleID := range evictions {
		template := e.evictionFacts[ruleID]
		for _, plan := range e.evictionPlans[ruleID] {
			r := plan.st.rule
			facts := *template
			facts.TraceID, facts.SpanID = cause.TraceID, cause.SpanID
			var ignored []string
			observed, fired := e.countKey(plan.st, plan.key, now, true, &ignored,
				func(total, _ int64) (float64, bool) {
					return float64(total), compare(float64(total), r.Comparison, r.Threshold)
				})
			if fired {
				out = append(out, Firing{Rule: r, Observed: observed, Threshold: r.Threshold,
					Group: groupOf(r, facts.Attrs), AtNanos: now, Facts: &facts})
			}
		}
	}
	return out
}

// judgeRatio: the share of failing (or, observing success_rate, of good) spans in the window, once
// it holds min_samples spans.
func (e *Engine) judgeRatio(st *ruleState, f *SpanFacts, now int64, evictions *[]string) (float64, bool) {
	r := st.rule
	return e.countKey(st, groupKey(r, f.Attrs), now, matches(r.Failure, f), evictions, func(total, failures int64) (float64, bool) {
		if total < int64(r.MinSamples) {
			return 0, false
		}
		share := float64(failures) / float64(total)
		if r.Observe == rules.ObserveSuccessRate {
			share = float64(total-failures) / float64(total)
		}
		return share, compare(share, r.Comparison, r.Threshold)
	})
}

// judgeCount: the number of matching spans in the window.
func (e *Engine) judgeCount(st *ruleState, f *SpanFacts, now int64, evictions *[]string) (float64, bool) {
	r := st.rule
	return e.countKey(st, groupKey(r, f.Attrs), now, true, evictions, func(total, _ int64) (float64, bool) {
		count := float64(total)
		return count, compare(count, r.Comparison, r.Threshold)
	})
}

// countKey is what the window rules share (engine.py _count_in and the suppression of its callers):
// the span is counted (a hit or not) in the window of group key, found or created, which may evict
// the least suspicious group (its rule id is appended to evictions); observe reads the window's sums
// and says whether the rule fires. A rule fires at most once per window and group.
func (e *Engine) countKey(st *ruleState, key string, nowNanos int64, hit bool, evictions *[]string,
	observe func(total, hits int64) (float64, bool),
) (float64, bool) {
	r := st.rule
	now := float64(nowNanos) / 1e9

	e.mu.Lock()
	defer e.mu.Unlock()
	if !st.bucketKnown || st.lastNow != nowNanos {
		st.lastNow, st.lastBucket, st.bucketKnown = nowNanos, pyFloorDiv(now, r.Window/bucketsPerWindow), true
	}
	bucket := st.lastBucket
	w := e.window(st, key, bucket, evictions)
	w.add(bucket, hit)
	total, hits := w.sums()
	st.groups.seen(w, hits)
	if now < w.suppressedUntil {
		return 0, false
	}
	observed, fires := observe(total, hits)
	if !fires {
		return 0, false
	}
	w.suppressedUntil = now + r.Window // once per window and group
	return observed, true
}

// window finds or creates a group's window; the caller holds e.mu. A new group of a full rule takes
// the place (and the emptied window) of the least suspicious one; one seen before its eviction starts
// from what it had counted, at most threshold - 2 (a collision alone never fires).
func (e *Engine) window(st *ruleState, key string, bucket int64, evictions *[]string) *window {
	if w, ok := st.groups.windows[key]; ok {
		return w
	}
	var w *window
	if len(st.groups.windows) >= e.maxGroups {
		w = e.evict(st, bucket, evictions)
		*w = window{epoch: -1, suppressedUntil: math.Inf(-1), score: -1}
		w.key = key
	} else {
		w = newWindow(key)
	}
	if st.ghosts != nil {
		limit := max(0, int64(math.Ceil(st.rule.Threshold))-2)
		if prior := min(st.ghosts.estimate(key, bucket), limit); prior > 0 {
			w.epoch = bucket
			w.totals[bucket%bucketsPerWindow], w.hits[bucket%bucketsPerWindow] = prior, prior
			w.prior = prior
		}
	}
	st.groups.add(w)
	return w
}

// evict removes the least suspicious group of a full rule and returns its window for reuse; a count
// rule remembers what the group had counted (nothing once its window ran out) beyond its prior.
func (e *Engine) evict(st *ruleState, bucket int64, evictions *[]string) *window {
	w := st.groups.evict(bucket)
	e.evicted++
	if st.rule.Kind == semconv.RuleKindCount {
		remembered := int64(0)
		if w.epoch > bucket-bucketsPerWindow {
			remembered = w.score - w.prior
		}
		if remembered > 0 {
			if st.ghosts == nil {
				st.ghosts = newGhosts(e.maxGroups)
			}
			st.ghosts.add(w.key, remembered, bucket)
		}
	}
	*evictions = append(*evictions, st.rule.ID)
	if e.onEvict != nil {
		e.onEvict(st.rule.ID)
	}
	return w
}

// OnEvict sets a function told the rule id of every eviction; call it before the first Judge. It
// runs under the engine's lock and must be quick (a counter).
func (e *Engine) OnEvict(f func(ruleID string)) { e.onEvict = f }

// WindowRules are the enabled window rules, in rules file order.
func (e *Engine) WindowRules() []*rules.Rule {
	var out []*rules.Rule
	for _, st := range e.rules {
		if IsWindow(st.rule) {
			out = append(out, st.rule)
		}
	}
	return out
}

// Matches says whether every condition holds for the span (the engine's own matching).
func Matches(conditions []rules.Condition, f *SpanFacts) bool { return matches(conditions, f) }

// GroupKey is the key of a rule's group for the attributes (equal where the engine's keys are equal).
func GroupKey(r *rules.Rule, attrs pcommon.Map) string { return groupKey(r, attrs) }

// Evicted is how many window groups were dropped to stay within max_groups, over all rules.
func (e *Engine) Evicted() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.evicted
}

// TrackedGroups is how many window groups are held across all rules.
func (e *Engine) TrackedGroups() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, st := range e.rules {
		n += len(st.groups.windows)
	}
	return n
}

// pyFloorDiv is Python's float floor division (a // b), which the Python engine uses for bucket
// numbers; math.Floor(a/b) can differ from it by one at bucket edges.
func pyFloorDiv(a, b float64) int64 {
	mod := math.Mod(a, b)
	div := (a - mod) / b
	if mod != 0 && (b < 0) != (mod < 0) {
		div -= 1
	}
	if div == 0 {
		return 0
	}
	floor := math.Floor(div)
	if div-floor > 0.5 {
		floor++
	}
	return int64(floor)
}

// compare is observed <comparison> threshold; an empty comparison is gt.
func compare(observed float64, comparison string, threshold float64) bool {
	switch comparison {
	case rules.CompareGTE:
		return observed >= threshold
	case rules.CompareLT:
		return observed < threshold
	case rules.CompareLTE:
		return observed <= threshold
	}
	return observed > threshold
}

// matches says whether every condition holds for the span.
func matches(conditions []rules.Condition, f *SpanFacts) bool {
	for i := range conditions {
		c := &conditions[i]
		switch c.Form {
		case rules.FormEquals:
			v, ok := f.Attrs.Get(c.Attribute)
			if !ok || !equal(v, c.Equals) {
				return false
			}
		case rules.FormExists:
			_, ok := f.Attrs.Get(c.Attribute)
			if ok != c.Exists {
				return false
			}
		case rules.FormNonEmpty:
			v, ok := f.Attrs.Get(c.Attribute)
			if !ok || isEmpty(v) {
				return false
			}
		case rules.FormSpanNamePrefix:
			if !strings.HasPrefix(f.Name, c.SpanNamePrefix) {
				return false
			}
		case rules.FormSpanKind:
			if f.Kind != c.SpanKind {
				return false
			}
		case rules.FormStatus:
			if f.Status != c.Status {
				return false
			}
		}
	}
	return true
}

// isEmpty is the Python engine's `value in (None, "", (), [])`.
func isEmpty(v pcommon.Value) bool {
	switch v.Type() {
	case pcommon.ValueTypeEmpty:
		return true
	case pcommon.ValueTypeStr:
		return v.Str() == ""
	case pcommon.ValueTypeSlice:
		return v.Slice().Len() == 0
	}
	return false
}

// equal is the Python engine's _equal: booleans by truthiness, numbers as floats, anything else by
// value or by its text (an int attribute 5 equals "5").
func equal(v pcommon.Value, expected any) bool {
	if b, ok := expected.(bool); ok {
		return truthy(v) == b
	}
	if v.Type() == pcommon.ValueTypeBool {
		x := 0.0
		if v.Bool() {
			x = 1
		}
		switch e := expected.(type) {
		case int64:
			return x == float64(e)
		case float64:
			return x == e
		}
		return false
	}
	if x, ok := number(v); ok {
		switch e := expected.(type) {
		case int64:
			return x == float64(e)
		case float64:
			return x == e
		}
	}
	text, ok := pyStr(v)
	if !ok {
		return false
	}
	switch e := expected.(type) {
	case string:
		return text == e
	case int64:
		return text == strconv.FormatInt(e, 10)
	case float64:
		return text == pyFloat(e)
	}
	return false
}

func truthy(v pcommon.Value) bool {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return v.Str() != ""
	case pcommon.ValueTypeBool:
		return v.Bool()
	case pcommon.ValueTypeInt:
		return v.Int() != 0
	case pcommon.ValueTypeDouble:
		return v.Double() != 0
	case pcommon.ValueTypeSlice:
		return v.Slice().Len() > 0
	case pcommon.ValueTypeMap:
		return v.Map().Len() > 0
	case pcommon.ValueTypeBytes:
		return v.Bytes().Len() > 0
	}
	return false
}

// number is a numeric (not boolean) attribute as a float.
func number(v pcommon.Value) (float64, bool) {
	switch v.Type() {
	case pcommon.ValueTypeInt:
		return float64(v.Int()), true
	case pcommon.ValueTypeDouble:
		return v.Double(), true
	}
	return 0, false
}

// pyStr is Python's str() of a scalar attribute value.
func pyStr(v pcommon.Value) (string, bool) {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return v.Str(), true
	case pcommon.ValueTypeInt:
		return strconv.FormatInt(v.Int(), 10), true
	case pcommon.ValueTypeDouble:
		return pyFloat(v.Double()), true
	}
	return "", false
}

// pyFloat is Python's repr of a float for finite values: 5.0, 0.1, 1e+20.
func pyFloat(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e16 {
		return strconv.FormatFloat(f, 'f', -1, 64) + ".0"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// groupKey identifies a rule's group: the group_by values, equal where Python's tuple keys are equal
// (1, 1.0 and True are one key; a missing attribute is None).
func groupKey(r *rules.Rule, attrs pcommon.Map) string {
	if len(r.GroupBy) == 0 {
		return ""
	}
	var b strings.Builder
	for _, key := range r.GroupBy {
		v, ok := attrs.Get(key)
		part := "n"
		if ok {
			switch v.Type() {
			case pcommon.ValueTypeStr:
				part = "s" + v.Str()
			case pcommon.ValueTypeBool:
				part = "f0"
				if v.Bool() {
					part = "f1"
				}
			case pcommon.ValueTypeInt:
				part = "f" + strconv.FormatFloat(float64(v.Int()), 'g', -1, 64)
			case pcommon.ValueTypeDouble:
				part = "f" + strconv.FormatFloat(v.Double(), 'g', -1, 64)
			case pcommon.ValueTypeEmpty:
				part = "n"
			default:
				raw, _ := json.Marshal(v.AsRaw())
				part = "j" + string(raw)
			}
		}
		b.WriteString(strconv.Itoa(len(part)))
		b.WriteByte(':')
		b.WriteString(part)
	}
	return b.String()
}

// groupOf is the group attributes copied onto the record: the group_by keys the span has.
func groupOf(r *rules.Rule, attrs pcommon.Map) []GroupValue {
	var out []GroupValue
	for _, key := range r.GroupBy {
		if v, ok := attrs.Get(key); ok && v.Type() != pcommon.ValueTypeEmpty {
			out = append(out, GroupValue{Key: key, Value: v})
		}
	}
	return out
}
