package b2bderive // import "github.com/b2b-otel/b2b-otel/collector/connector/b2bderive"

// The rules engine: the Go twin of b2b_otel/rules/engine.py, judged against the same conformance
// vectors. Per-span rules (latency, event, span-attribute gauge) are stateless; window rules (ratio,
// count) keep per-group counters in 60 fixed buckets per window, the number of groups per rule bounded
// by evicting the least recently seen group first (so a flood of spoofed client addresses cannot grow
// it). Only the window update takes the lock: ConsumeTraces runs concurrently.

import (
	"container/list"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

const (
	bucketsPerWindow = 60
	defaultMaxGroups = 10000
)

// spanFacts is what the engine needs of a span; attrs is the span's own attribute map (not a copy).
type spanFacts struct {
	name      string
	kind      string // internal, server, client, producer, consumer
	status    string // error, ok, unset
	durationS float64
	attrs     pcommon.Map
	traceID   pcommon.TraceID
	spanID    pcommon.SpanID
}

var spanKindNames = map[ptrace.SpanKind]string{
	// OTel treats an unspecified kind as internal; so does the Python conformance runner.
	ptrace.SpanKindUnspecified: "internal",
	ptrace.SpanKindInternal:    "internal",
	ptrace.SpanKindServer:      "server",
	ptrace.SpanKindClient:      "client",
	ptrace.SpanKindProducer:    "producer",
	ptrace.SpanKindConsumer:    "consumer",
}

var statusNames = map[ptrace.StatusCode]string{
	ptrace.StatusCodeUnset: "unset",
	ptrace.StatusCodeOk:    "ok",
	ptrace.StatusCodeError: "error",
}

func factsOf(span ptrace.Span) spanFacts {
	start, end := int64(span.StartTimestamp()), int64(span.EndTimestamp())
	if end < start {
		end = start
	}
	kind, ok := spanKindNames[span.Kind()]
	if !ok {
		kind = "internal"
	}
	status, ok := statusNames[span.Status().Code()]
	if !ok {
		status = "unset"
	}
	return spanFacts{
		name:      span.Name(),
		kind:      kind,
		status:    status,
		durationS: float64(end-start) / 1e9,
		attrs:     span.Attributes(),
		traceID:   span.TraceID(),
		spanID:    span.SpanID(),
	}
}

// groupValue is one group_by attribute of a firing, as found on the span.
type groupValue struct {
	key   string
	value pcommon.Value
}

// firing is a rule that fired on a span.
type firing struct {
	rule      *Rule
	observed  float64
	threshold float64
	group     []groupValue
	atNanos   int64
	facts     *spanFacts
}

type window struct {
	totals, hits    [bucketsPerWindow]int64
	epoch           int64 // absolute bucket number of the newest bucket; -1 before the first span
	suppressedUntil float64
	key             string
}

func newWindow(key string) *window {
	return &window{epoch: -1, suppressedUntil: math.Inf(-1), key: key}
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

// ruleState is a rule and, for window rules, its groups in least-recently-seen order.
type ruleState struct {
	rule *Rule
	// Like the Python engine's index: a rule whose first equals condition expects a string is only a
	// candidate for spans whose attribute is that very string.
	indexAttr  string
	indexValue string
	indexed    bool
	groups     map[string]*list.Element
	lru        *list.List
}

type engine struct {
	rules     []*ruleState
	maxGroups int
	clock     func() int64 // nanoseconds since the epoch

	mu      sync.Mutex // guards the windows of every rule and evicted
	evicted uint64
}

func newEngine(set *RuleSet, maxGroups int, clock func() int64) *engine {
	e := &engine{maxGroups: maxGroups, clock: clock}
	for _, r := range set.Rules {
		if !r.Enabled || !r.readsSpans() {
			// Metric and computed gauges read sampled metrics, which a traces connector never sees.
			continue
		}
		st := &ruleState{rule: r, groups: map[string]*list.Element{}, lru: list.New()}
		for _, c := range r.Match {
			if c.Form == "equals" {
				if s, ok := c.Equals.(string); ok {
					st.indexAttr, st.indexValue, st.indexed = c.Attribute, s, true
				}
				break
			}
		}
		e.rules = append(e.rules, st)
	}
	return e
}

// judge returns every firing a span causes; perSpan=false leaves out latency, event and gauge rules
// (a span the Python layer already judged).
func (e *engine) judge(f *spanFacts, perSpan bool) []firing {
	var out []firing
	now := e.clock()
	for _, st := range e.rules {
		r := st.rule
		windowed := r.Kind == "ratio" || r.Kind == "count"
		if !windowed && !perSpan {
			continue
		}
		if st.indexed {
			v, ok := f.attrs.Get(st.indexAttr)
			if !ok || v.Type() != pcommon.ValueTypeStr || v.Str() != st.indexValue {
				continue
			}
		}
		if !matches(r.Match, f) {
			continue
		}
		var fired *firing
		switch r.Kind {
		case "latency":
			if compare(f.durationS, r.Comparison, r.Threshold) {
				fired = &firing{observed: f.durationS}
			}
		case "event":
			fired = &firing{observed: 1}
		case "gauge":
			if v, ok := f.attrs.Get(r.Source.SpanAttribute); ok {
				if x, numeric := number(v); numeric && compare(x, r.Comparison, r.Threshold) {
					fired = &firing{observed: x}
				}
			}
		case "ratio":
			fired = e.judgeRatio(st, f, now)
		case "count":
			fired = e.judgeCount(st, f, now)
		}
		if fired != nil {
			fired.rule = r
			fired.threshold = r.Threshold
			fired.group = groupOf(r, f.attrs)
			fired.atNanos = now
			fired.facts = f
			out = append(out, *fired)
		}
	}
	return out
}

func (e *engine) judgeRatio(st *ruleState, f *spanFacts, nowNanos int64) *firing {
	r := st.rule
	failed := matches(r.Failure, f)
	key := groupKey(r, f.attrs)
	now := float64(nowNanos) / 1e9
	bucket := pyFloorDiv(now, r.Window/bucketsPerWindow)

	e.mu.Lock()
	defer e.mu.Unlock()
	w := e.window(st, key)
	w.add(bucket, failed)
	total, failures := w.sums()
	if total < int64(r.MinSamples) || now < w.suppressedUntil {
		return nil
	}
	share := float64(failures) / float64(total)
	if r.Observe == "success_rate" {
		share = float64(total-failures) / float64(total)
	}
	if !compare(share, r.Comparison, r.Threshold) {
		return nil
	}
	w.suppressedUntil = now + r.Window // once per window and group
	return &firing{observed: share}
}

func (e *engine) judgeCount(st *ruleState, f *spanFacts, nowNanos int64) *firing {
	r := st.rule
	key := groupKey(r, f.attrs)
	now := float64(nowNanos) / 1e9
	bucket := pyFloorDiv(now, r.Window/bucketsPerWindow)

	e.mu.Lock()
	defer e.mu.Unlock()
	w := e.window(st, key)
	w.add(bucket, true)
	total, _ := w.sums()
	count := float64(total)
	if now < w.suppressedUntil || !compare(count, r.Comparison, r.Threshold) {
		return nil
	}
	w.suppressedUntil = now + r.Window
	return &firing{observed: count}
}

// window finds or creates a group's window; the caller holds e.mu.
func (e *engine) window(st *ruleState, key string) *window {
	if el, ok := st.groups[key]; ok {
		st.lru.MoveToBack(el)
		return el.Value.(*window)
	}
	w := newWindow(key)
	st.groups[key] = st.lru.PushBack(w)
	if len(st.groups) > e.maxGroups {
		oldest := st.lru.Front()
		st.lru.Remove(oldest)
		delete(st.groups, oldest.Value.(*window).key)
		e.evicted++
	}
	return w
}

// Evicted is how many window groups were dropped to stay within max_groups, over all rules.
func (e *engine) Evicted() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.evicted
}

// TrackedGroups is how many window groups are held across all rules.
func (e *engine) TrackedGroups() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, st := range e.rules {
		n += len(st.groups)
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

func compare(observed float64, comparison string, threshold float64) bool {
	switch comparison {
	case "gte":
		return observed >= threshold
	case "lt":
		return observed < threshold
	case "lte":
		return observed <= threshold
	}
	return observed > threshold
}

// matches says whether every condition holds for the span.
func matches(conditions []Condition, f *spanFacts) bool {
	for i := range conditions {
		c := &conditions[i]
		switch c.Form {
		case "equals":
			v, ok := f.attrs.Get(c.Attribute)
			if !ok || !equal(v, c.Equals) {
				return false
			}
		case "exists":
			_, ok := f.attrs.Get(c.Attribute)
			if ok != c.Exists {
				return false
			}
		case "non_empty":
			v, ok := f.attrs.Get(c.Attribute)
			if !ok || isEmpty(v) {
				return false
			}
		case "span_name_prefix":
			if !strings.HasPrefix(f.name, c.SpanNamePrefix) {
				return false
			}
		case "span_kind":
			if f.kind != c.SpanKind {
				return false
			}
		case "status":
			if f.status != c.Status {
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
func groupKey(r *Rule, attrs pcommon.Map) string {
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
func groupOf(r *Rule, attrs pcommon.Map) []groupValue {
	var out []groupValue
	for _, key := range r.GroupBy {
		if v, ok := attrs.Get(key); ok && v.Type() != pcommon.ValueTypeEmpty {
			out = append(out, groupValue{key: key, value: v})
		}
	}
	return out
}
