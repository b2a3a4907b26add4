// Package rules reads and validates a rules file (docs/rules.md): the same YAML schema the Python
// layer validates in b2b_otel/rules/schema.py, with the same messages. The file is read from the
// yaml.v3 node tree rather than decoded into structs so that unknown keys, duplicate keys and wrong
// types are refused with the line they are on.
package rules // import "github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/rules"

import (
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/semconv"
)

// defaultRulesYAML is a copy of b2b_otel/rules/default_rules.yaml (TestEmbeddedRulesMatchPython keeps
// the two identical): the rules in force when no rules file is given.
//
//go:embed default_rules.yaml
var defaultRulesYAML []byte

// The forms of a Condition (Condition.Form).
const (
	FormEquals         = "equals"
	FormExists         = "exists"
	FormNonEmpty       = "non_empty"
	FormSpanNamePrefix = "span_name_prefix"
	FormSpanKind       = "span_kind"
	FormStatus         = "status"
)

// The comparisons of Rule.Comparison; an empty comparison means CompareGT.
const (
	CompareGT  = "gt"
	CompareLT  = "lt"
	CompareGTE = "gte"
	CompareLTE = "lte"
)

// What a ratio rule observes (Rule.Observe).
const (
	ObserveFailureRate = "failure_rate"
	ObserveSuccessRate = "success_rate"
)

// The span kinds and statuses a condition names (Condition.SpanKind, Condition.Status).
const (
	SpanKindInternal = "internal"
	SpanKindServer   = "server"
	SpanKindClient   = "client"
	SpanKindProducer = "producer"
	SpanKindConsumer = "consumer"

	StatusError = "error"
	StatusOK    = "ok"
	StatusUnset = "unset"
)

const (
	schemaVersion     = 1
	durationAccepted  = "a duration such as 30, 30s, 500ms, 5m or 1h"
	numberAccepted    = "a number such as 0.95 or 10"
	conditionAccepted = "accepted: {attribute: KEY, equals: VALUE}, {attribute: KEY, exists: true|false}, " +
		"{attribute: KEY, non_empty: true}, {span_name_prefix: TEXT}, {span_kind: KIND}, {status: STATUS}"
	sourceAccepted = "a source has exactly one of span_attribute: KEY, metric: NAME, computed: pool_utilisation"
)

var (
	ruleIDPattern   = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)*$`)
	durationPattern = regexp.MustCompile(`^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$`)
	unitSeconds     = map[string]float64{"ms": 0.001, "s": 1, "m": 60, "h": 3600, "": 1}

	kinds       = semconv.RuleKinds()
	severities  = semconv.B2BAlertSeverityValues()
	tiers       = semconv.B2BAlertTierValues()
	comparisons = []string{CompareGT, CompareLT, CompareGTE, CompareLTE}
	spanKinds   = []string{SpanKindInternal, SpanKindServer, SpanKindClient, SpanKindProducer, SpanKindConsumer}
	statuses    = []string{StatusError, StatusOK, StatusUnset}
	observes    = []string{ObserveFailureRate, ObserveSuccessRate}
	eventNames  = []string{semconv.EventB2BSLABreach, semconv.EventB2BSecurityEvent}
	computeds   = []string{"pool_utilisation"}

	ruleFields      = []string{"id", "kind", "severity", "tier", "description", "match", "group_by", "threshold", "comparison", "window", "min_samples", "failure", "observe", "source", "event", "enabled"}
	conditionFields = []string{"attribute", "equals", "exists", "non_empty", "span_name_prefix", "span_kind", "status"}
	sourceFields    = []string{"span_attribute", "metric", "computed"}
	fileFields      = []string{"version", "rules"}

	// Which optional fields each kind requires / allows (schema.py _REQUIRED / _ALLOWED).
	requiredByKind = map[string][]string{
		semconv.RuleKindLatency: {"threshold"},
		semconv.RuleKindRatio:   {"threshold", "comparison", "window", "min_samples", "failure"},
		semconv.RuleKindCount:   {"threshold", "comparison", "window"},
		semconv.RuleKindEvent:   {},
		semconv.RuleKindGauge:   {"threshold", "comparison", "source"},
	}
	allowedByKind = map[string][]string{
		semconv.RuleKindLatency: {"threshold", "comparison"},
		semconv.RuleKindRatio:   {"threshold", "comparison", "window", "min_samples", "failure", "observe"},
		semconv.RuleKindCount:   {"threshold", "comparison", "window"},
		semconv.RuleKindEvent:   {},
		semconv.RuleKindGauge:   {"threshold", "comparison", "source"},
	}
	kindFields = []string{"threshold", "comparison", "window", "min_samples", "failure", "observe", "source"}
)

// Condition is one predicate on a span; exactly one form is set.
type Condition struct {
	Attribute      string
	Form           string // one of the Form constants
	Equals         any    // string, bool, int64 or float64
	Exists         bool
	SpanNamePrefix string
	SpanKind       string
	Status         string
}

// Source is where a gauge rule reads its value: exactly one field is set.
type Source struct {
	SpanAttribute string
	Metric        string
	Computed      string
}

// Rule is one validated rule; durations (latency threshold, window) are in seconds.
type Rule struct {
	ID          string
	Kind        string // a semconv.RuleKind value
	Severity    string // a semconv.B2BAlertSeverity value
	Tier        string // a semconv.B2BAlertTier value
	Description string
	Match       []Condition
	GroupBy     []string
	Threshold   float64
	Comparison  string // one of the Compare constants; empty: gt
	Window      float64
	MinSamples  int
	Failure     []Condition
	Observe     string // ObserveFailureRate or ObserveSuccessRate (ratio rules)
	Source      *Source
	Event       string // the event a firing emits (explicit or by tier)
	Enabled     bool

	set map[string]bool // which optional fields the file gave, for the per-kind checks
}

// ReadsSpans says whether the rule judges spans (every kind but metric/computed gauges).
func (r *Rule) ReadsSpans() bool {
	return r.Kind != semconv.RuleKindGauge || (r.Source != nil && r.Source.SpanAttribute != "")
}

// Set is a validated rules file with its threshold overrides applied.
type Set struct {
	Rules  []*Rule
	Source string
}

// problem is one thing wrong with a rules file, formatted like the Python loader's messages:
// "FILE:LINE: rules[1].threshold=3 sec: not a duration; accepted: ...".
type problem struct {
	line    int
	field   string
	value   string
	message string
}

type parser struct {
	source   string
	problems []problem
}

func (p *parser) add(node *yaml.Node, field, value, message string) {
	line := 0
	if node != nil {
		line = node.Line
	}
	p.problems = append(p.problems, problem{line: line, field: field, value: value, message: message})
}

func (p *parser) err() error {
	if len(p.problems) == 0 {
		return nil
	}
	errs := make([]error, 0, len(p.problems))
	for _, pr := range p.problems {
		where := p.source
		if pr.line > 0 {
			where = fmt.Sprintf("%s:%d", p.source, pr.line)
		}
		if pr.field != "" {
			where += ": " + pr.field
			if pr.value != "" {
				where += "=" + pr.value
			}
		}
		errs = append(errs, fmt.Errorf("%s: %s", where, pr.message))
	}
	return errors.Join(errs...)
}

// Load reads and validates the rules file at path (the embedded built-in rules when path is empty)
// and applies the threshold overrides (rule id -> value, as B2B_OTEL_RULE_<ID>_THRESHOLD).
func Load(path string, overrides map[string]any) (*Set, error) {
	text := defaultRulesYAML
	source := "<built-in default_rules.yaml>"
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: cannot read the rules file: %w", path, err)
		}
		text, source = data, path
	}
	set, err := Parse(text, source)
	if err != nil {
		return nil, err
	}
	if err := applyOverrides(set, overrides); err != nil {
		return nil, err
	}
	return set, nil
}

// LoadWithEnvironment is Load with the Python layer's B2B_OTEL_RULE_<ID>_THRESHOLD variables of
// environ ("KEY=value" entries, as os.Environ gives them) applied first and overrides (the
// connector's threshold_overrides) over them. A variable of that shape naming no rule of the file is
// returned in unknown (the collector's environment may be shared with processes using other rules)
// rather than refused; a bad value of a known rule's variable is an error naming the variable.
func LoadWithEnvironment(path string, overrides map[string]any, environ []string) (set *Set, unknown []string, err error) {
	set, err = Load(path, nil)
	if err != nil {
		return nil, nil, err
	}
	byVariable := map[string]*Rule{}
	for _, r := range set.Rules {
		byVariable[overrideVariable(r.ID)] = r
	}
	var errs []error
	for _, entry := range environ {
		name, value, ok := strings.Cut(entry, "=")
		if !ok || !strings.HasPrefix(name, overridePrefix) || !strings.HasSuffix(name, overrideSuffix) ||
			len(name) <= len(overridePrefix)+len(overrideSuffix) {
			continue
		}
		r, known := byVariable[name]
		if !known {
			unknown = append(unknown, name)
			continue
		}
		if _, configured := overrides[r.ID]; configured {
			continue // threshold_overrides is more specific than the environment
		}
		v, msg := overrideThreshold(r.Kind, value)
		if msg != "" {
			errs = append(errs, fmt.Errorf("%s=%s: %s (rule %s, %s)", name, value, msg, r.ID, set.Source))
			continue
		}
		r.Threshold = v
	}
	if err := applyOverrides(set, overrides); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	slices.Sort(unknown)
	return set, unknown, nil
}

// Parse validates the YAML text of a rules file (no overrides applied); source names it in error
// messages.
func Parse(text []byte, source string) (*Set, error) {
	p := &parser{source: source}
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		// yaml.v3 puts "line N" in its own message.
		return nil, fmt.Errorf("%s: not valid YAML: %w", source, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		p.add(nil, "", "", "empty file; a rules file is a mapping with version: 1 and rules: [...]")
		return nil, p.err()
	}
	root := doc.Content[0]
	fields := p.mapping(root, "", fileFields)
	if fields == nil {
		return nil, p.err()
	}
	if v, ok := fields["version"]; !ok {
		p.add(root, "version", "(missing)", "required field is missing")
	} else if n, ok := intValue(v.value); !ok || n != schemaVersion {
		p.add(v.key, "version", v.value.Value, "accepted: 1 (the only version so far)")
	}
	set := &Set{Source: source}
	if r, ok := fields["rules"]; !ok {
		p.add(root, "rules", "(missing)", "required field is missing")
	} else if r.value.Kind != yaml.SequenceNode {
		p.add(r.key, "rules", "", "a list of rules")
	} else {
		seen := map[string]int{}
		for i, node := range r.value.Content {
			rule := p.rule(node, fmt.Sprintf("rules[%d]", i))
			if rule == nil {
				continue
			}
			if first, dup := seen[rule.ID]; dup {
				p.add(node, fmt.Sprintf("rules[%d].id", i), rule.ID, fmt.Sprintf("duplicate rule id (first at rules[%d])", first))
				continue
			}
			seen[rule.ID] = i
			set.Rules = append(set.Rules, rule)
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return set, nil
}

type entry struct{ key, value *yaml.Node }

// mapping checks that node is a mapping of known, unique keys and returns its entries by key.
func (p *parser) mapping(node *yaml.Node, path string, known []string) map[string]entry {
	if node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	if node.Kind != yaml.MappingNode {
		p.add(node, path, shown(node), "a mapping is expected")
		return nil
	}
	out := map[string]entry{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		key, value := node.Content[i], node.Content[i+1]
		if value.Kind == yaml.AliasNode {
			value = value.Alias
		}
		name := key.Value
		field := join(path, name)
		if _, dup := out[name]; dup {
			p.add(key, field, "", "duplicate key")
			continue
		}
		if !contains(known, name) {
			p.add(key, field, shown(value), "unknown field; accepted: "+strings.Join(known, ", "))
			continue
		}
		out[name] = entry{key: key, value: value}
	}
	return out
}

func (p *parser) rule(node *yaml.Node, path string) *Rule {
	fields := p.mapping(node, path, ruleFields)
	if fields == nil {
		return nil
	}
	before := len(p.problems)
	r := &Rule{Enabled: true, set: map[string]bool{}}
	required := func(name string) (entry, bool) {
		e, ok := fields[name]
		if !ok {
			p.add(node, join(path, name), "(missing)", "required field is missing")
		}
		return e, ok
	}
	if e, ok := required("id"); ok {
		if s, ok := p.str(e, path); ok {
			if !ruleIDPattern.MatchString(s) {
				p.add(e.key, join(path, "id"), s, "lower-case words of [a-z0-9_] joined by '.', e.g. agent.execution.slow")
			}
			r.ID = s
		}
	}
	r.Kind = p.enum(fields, "kind", path, kinds, true, node)
	r.Severity = p.enum(fields, "severity", path, severities, true, node)
	r.Tier = p.enum(fields, "tier", path, tiers, true, node)
	if e, ok := required("description"); ok {
		if s, ok := p.str(e, path); ok {
			if s == "" {
				p.add(e.key, join(path, "description"), "", "must not be empty")
			}
			r.Description = s
		}
	}
	if e, ok := fields["match"]; ok {
		r.Match = p.conditions(e, join(path, "match"))
	}
	if e, ok := fields["group_by"]; ok {
		r.GroupBy = p.strings(e, join(path, "group_by"))
	}
	if e, ok := fields["comparison"]; ok && !isNull(e.value) {
		r.set["comparison"] = true
		r.Comparison = p.enum(fields, "comparison", path, comparisons, false, node)
	}
	if e, ok := fields["window"]; ok && !isNull(e.value) {
		r.set["window"] = true
		if seconds, msg := parseDurationNode(e.value); msg != "" {
			p.add(e.key, join(path, "window"), shown(e.value), msg)
		} else {
			r.Window = seconds
		}
	}
	if e, ok := fields["min_samples"]; ok && !isNull(e.value) {
		r.set["min_samples"] = true
		if n, ok := intValue(e.value); !ok || n < 1 {
			p.add(e.key, join(path, "min_samples"), shown(e.value), "a whole number, at least 1")
		} else {
			r.MinSamples = int(n)
		}
	}
	if e, ok := fields["failure"]; ok && !isNull(e.value) {
		r.set["failure"] = true
		r.Failure = p.conditions(e, join(path, "failure"))
	}
	if e, ok := fields["observe"]; ok && !isNull(e.value) {
		r.set["observe"] = true
		r.Observe = p.enum(fields, "observe", path, observes, false, node)
	}
	if e, ok := fields["source"]; ok && !isNull(e.value) {
		r.set["source"] = true
		r.Source = p.sourceOf(e, join(path, "source"))
	}
	if e, ok := fields["event"]; ok && !isNull(e.value) {
		r.Event = p.enum(fields, "event", path, eventNames, false, node)
	}
	if e, ok := fields["enabled"]; ok {
		if e.value.Tag != "!!bool" {
			p.add(e.key, join(path, "enabled"), shown(e.value), "accepted: true, false")
		} else {
			r.Enabled = e.value.Value == "true"
		}
	}
	if e, ok := fields["threshold"]; ok && !isNull(e.value) {
		r.set["threshold"] = true
		if r.Kind != "" {
			if v, msg := parseThreshold(r.Kind, e.value); msg != "" {
				p.add(e.key, join(path, "threshold"), shown(e.value), msg)
			} else {
				r.Threshold = v
			}
		}
	}
	if len(p.problems) > before || r.Kind == "" {
		return nil
	}
	p.kindChecks(r, fields, node, path)
	if len(p.problems) > before {
		return nil
	}
	if r.Event == "" {
		r.Event = semconv.EventB2BSLABreach
		if r.Tier == semconv.B2BAlertTierSecurity {
			r.Event = semconv.EventB2BSecurityEvent
		}
	}
	if r.Kind == semconv.RuleKindRatio && r.Observe == "" {
		r.Observe = ObserveFailureRate
	}
	return r
}

// kindChecks are schema.py's Rule._fields_for_kind: what each kind requires and refuses.
func (p *parser) kindChecks(r *Rule, fields map[string]entry, node *yaml.Node, path string) {
	at := func(name string) *yaml.Node {
		if e, ok := fields[name]; ok {
			return e.key
		}
		return node
	}
	for _, name := range requiredByKind[r.Kind] {
		if !r.set[name] {
			p.add(node, join(path, name), "(missing)", fmt.Sprintf("required for a %s rule", r.Kind))
			return
		}
	}
	for _, name := range kindFields {
		if r.set[name] && !contains(allowedByKind[r.Kind], name) {
			takes := strings.Join(allowedByKind[r.Kind], ", ")
			if takes == "" {
				takes = "none of threshold/window/source"
			}
			p.add(at(name), join(path, name), "", fmt.Sprintf("not used by a %s rule; it takes %s", r.Kind, takes))
			return
		}
	}
	if r.Kind != semconv.RuleKindGauge && len(r.Match) == 0 {
		p.add(at("match"), join(path, "match"), "", fmt.Sprintf("a %s rule needs at least one match condition", r.Kind))
		return
	}
	if !r.ReadsSpans() {
		for i, c := range r.Match {
			if c.Attribute == "" {
				p.add(at("match"), fmt.Sprintf("%s[%d]", join(path, "match"), i), "", "a metric gauge matches data point attributes only (attribute: KEY)")
				return
			}
		}
	}
	if r.set["failure"] && len(r.Failure) == 0 {
		p.add(at("failure"), join(path, "failure"), "", "a ratio rule needs at least one failure condition")
		return
	}
	if r.Kind == semconv.RuleKindLatency && (r.Comparison == CompareLT || r.Comparison == CompareLTE) {
		p.add(at("comparison"), join(path, "comparison"), r.Comparison, "a latency rule fires on slow spans; accepted: gt, gte")
	}
}

func (p *parser) str(e entry, path string) (string, bool) {
	if e.value.Kind != yaml.ScalarNode || e.value.Tag != "!!str" {
		p.add(e.key, join(path, e.key.Value), shown(e.value), "a string is expected")
		return "", false
	}
	return e.value.Value, true
}

func (p *parser) enum(fields map[string]entry, name, path string, accepted []string, required bool, node *yaml.Node) string {
	e, ok := fields[name]
	if !ok {
		if required {
			p.add(node, join(path, name), "(missing)", "required field is missing")
		}
		return ""
	}
	if e.value.Kind != yaml.ScalarNode || e.value.Tag != "!!str" || !contains(accepted, e.value.Value) {
		p.add(e.key, join(path, name), shown(e.value), "accepted: "+strings.Join(accepted, ", "))
		return ""
	}
	return e.value.Value
}

func (p *parser) strings(e entry, path string) []string {
	if e.value.Kind != yaml.SequenceNode {
		p.add(e.key, path, shown(e.value), "a list of attribute keys, e.g. [client.address]")
		return nil
	}
	out := make([]string, 0, len(e.value.Content))
	for i, item := range e.value.Content {
		if item.Kind != yaml.ScalarNode || item.Tag != "!!str" {
			p.add(item, fmt.Sprintf("%s[%d]", path, i), shown(item), "a string is expected")
			continue
		}
		out = append(out, item.Value)
	}
	return out
}

func (p *parser) conditions(e entry, path string) []Condition {
	if e.value.Kind != yaml.SequenceNode {
		p.add(e.key, path, shown(e.value), "a list of conditions; "+conditionAccepted)
		return nil
	}
	out := make([]Condition, 0, len(e.value.Content))
	for i, item := range e.value.Content {
		if c, ok := p.condition(item, fmt.Sprintf("%s[%d]", path, i)); ok {
			out = append(out, c)
		}
	}
	return out
}

func (p *parser) condition(node *yaml.Node, path string) (Condition, bool) {
	fields := p.mapping(node, path, conditionFields)
	if fields == nil {
		return Condition{}, false
	}
	before := len(p.problems)
	var c Condition
	var tests, spans []string
	for _, name := range []string{FormEquals, FormExists, FormNonEmpty} {
		if e, ok := fields[name]; ok && !isNull(e.value) {
			tests = append(tests, name)
		}
	}
	for _, name := range []string{FormSpanNamePrefix, FormSpanKind, FormStatus} {
		if e, ok := fields[name]; ok && !isNull(e.value) {
			spans = append(spans, name)
		}
	}
	if e, ok := fields["attribute"]; ok && !isNull(e.value) {
		if s, ok := p.str(e, path); ok {
			if s == "" {
				p.add(e.key, join(path, "attribute"), "", "must not be empty")
			}
			c.Attribute = s
		}
		if len(tests) != 1 || len(spans) > 0 {
			p.add(node, path, "", "an attribute condition takes exactly one of equals, exists, non_empty; "+conditionAccepted)
			return c, false
		}
	} else if len(tests) > 0 {
		p.add(node, join(path, "attribute"), "", tests[0]+" needs an attribute; "+conditionAccepted)
		return c, false
	} else if len(spans) != 1 {
		p.add(node, path, "", "a condition has exactly one form; "+conditionAccepted)
		return c, false
	}
	if len(tests) == 1 {
		c.Form = tests[0]
	} else {
		c.Form = spans[0]
	}
	e := fields[c.Form]
	v := e.value
	field := join(path, c.Form)
	switch c.Form {
	case FormEquals:
		value, ok := scalarValue(v)
		if !ok {
			p.add(e.key, field, shown(v), "a string, number or boolean")
		}
		c.Equals = value
	case FormExists, FormNonEmpty:
		if v.Tag != "!!bool" {
			p.add(e.key, field, shown(v), "accepted: true, false")
		} else {
			c.Exists = v.Value == "true"
			if c.Form == FormNonEmpty && !c.Exists {
				p.add(e.key, field, "false", "only non_empty: true is meaningful; use exists: false")
			}
		}
	case FormSpanNamePrefix:
		if s, ok := p.str(e, path); ok {
			if s == "" {
				p.add(e.key, field, "", "must not be empty")
			}
			c.SpanNamePrefix = s
		}
	case FormSpanKind:
		c.SpanKind = p.enum(fields, FormSpanKind, path, spanKinds, false, node)
	case FormStatus:
		c.Status = p.enum(fields, FormStatus, path, statuses, false, node)
	}
	return c, len(p.problems) == before
}

func (p *parser) sourceOf(e entry, path string) *Source {
	fields := p.mapping(e.value, path, sourceFields)
	if fields == nil {
		return nil
	}
	var given []string
	for _, name := range sourceFields {
		if f, ok := fields[name]; ok && !isNull(f.value) {
			given = append(given, name)
		}
	}
	if len(given) != 1 {
		p.add(e.key, path, "", sourceAccepted)
		return nil
	}
	s := &Source{}
	switch given[0] {
	case "span_attribute", "metric":
		v, ok := p.str(fields[given[0]], path)
		if ok && v == "" {
			p.add(fields[given[0]].key, join(path, given[0]), "", "must not be empty")
		}
		if given[0] == "metric" {
			s.Metric = v
		} else {
			s.SpanAttribute = v
		}
	case "computed":
		s.Computed = p.enum(fields, "computed", path, computeds, false, e.value)
	}
	return s
}

// parseThreshold is schema.py's Rule._threshold_for_kind.
func parseThreshold(kind string, node *yaml.Node) (float64, string) {
	if kind == semconv.RuleKindLatency {
		return parseDurationNode(node)
	}
	if node.Kind != yaml.ScalarNode || (node.Tag != "!!int" && node.Tag != "!!float") {
		return 0, fmt.Sprintf("a %s threshold is a number; accepted: %s", kind, numberAccepted)
	}
	v, ok := floatValue(node)
	if !ok {
		return 0, fmt.Sprintf("a %s threshold is a number; accepted: %s", kind, numberAccepted)
	}
	return checkNumberThreshold(kind, v)
}

func checkNumberThreshold(kind string, v float64) (float64, string) {
	if kind == semconv.RuleKindRatio && (v < 0 || v > 1) {
		return 0, "a ratio threshold is a share between 0 and 1, e.g. 0.95"
	}
	if kind == semconv.RuleKindCount && (v != math.Trunc(v) || v < 1) {
		return 0, "a count threshold is a whole number of spans, at least 1"
	}
	return v, ""
}

func parseDurationNode(node *yaml.Node) (float64, string) {
	if node.Kind != yaml.ScalarNode {
		return 0, "not a duration; accepted: " + durationAccepted
	}
	switch node.Tag {
	case "!!int", "!!float":
		v, ok := floatValue(node)
		if !ok {
			return 0, "not a duration; accepted: " + durationAccepted
		}
		return positiveDuration(v)
	case "!!str":
		return parseDuration(node.Value)
	}
	return 0, "not a duration; accepted: " + durationAccepted
}

// parseDuration reads "30", "30s", "500ms", "5m", "1h" (a bare number is seconds), as
// b2b_otel._internal.settings.parse_duration does.
func parseDuration(text string) (float64, string) {
	m := durationPattern.FindStringSubmatch(text)
	if m == nil {
		return 0, "not a duration; accepted: " + durationAccepted
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, "not a duration; accepted: " + durationAccepted
	}
	return positiveDuration(v * unitSeconds[m[2]])
}

func positiveDuration(seconds float64) (float64, string) {
	if seconds <= 0 || math.IsNaN(seconds) || math.IsInf(seconds, 0) {
		return 0, "must be greater than zero; accepted: " + durationAccepted
	}
	return seconds, ""
}

// applyOverrides sets thresholds from rule id -> value, checked with the rule's kind
// (loader.py _apply_overrides / _with_threshold).
func applyOverrides(set *Set, overrides map[string]any) error {
	var errs []error
	byVariable := map[string]string{}
	for _, r := range set.Rules {
		v := overrideVariable(r.ID)
		if other, dup := byVariable[v]; dup {
			errs = append(errs, fmt.Errorf("%s: rule ids %q and %q share this override variable", v, other, r.ID))
		}
		byVariable[v] = r.ID
	}
	for _, id := range slices.Sorted(maps.Keys(overrides)) {
		raw := overrides[id]
		var rule *Rule
		for _, r := range set.Rules {
			if r.ID == id {
				rule = r
			}
		}
		if rule == nil {
			errs = append(errs, fmt.Errorf("threshold_overrides: %s: no rule has this id in %s", id, set.Source))
			continue
		}
		v, msg := overrideThreshold(rule.Kind, raw)
		if msg != "" {
			errs = append(errs, fmt.Errorf("threshold_overrides: %s=%v: %s (rule %s)", id, raw, msg, id))
			continue
		}
		rule.Threshold = v
	}
	return errors.Join(errs...)
}

func overrideThreshold(kind string, raw any) (float64, string) {
	if kind == semconv.RuleKindEvent {
		return 0, "an event rule has no threshold"
	}
	var number float64
	switch v := raw.(type) {
	case string:
		if kind == semconv.RuleKindLatency {
			return parseDuration(strings.TrimSpace(v))
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, "not a number; accepted: " + numberAccepted
		}
		number = f
	case int:
		number = float64(v)
	case int64:
		number = float64(v)
	case uint64:
		number = float64(v)
	case float64:
		number = v
	default:
		return 0, "not a number; accepted: " + numberAccepted
	}
	if kind == semconv.RuleKindLatency {
		return positiveDuration(number)
	}
	if math.IsNaN(number) || math.IsInf(number, 0) {
		return 0, "not a number; accepted: " + numberAccepted
	}
	return checkNumberThreshold(kind, number)
}

// overrideVariable is the Python layer's environment variable for a rule's threshold.
func overrideVariable(ruleID string) string {
	return overridePrefix + strings.ReplaceAll(strings.ToUpper(ruleID), ".", "_") + overrideSuffix
}

// OverrideVariable is the environment variable that overrides a rule's threshold.
func OverrideVariable(ruleID string) string { return overrideVariable(ruleID) }

const (
	overridePrefix = "B2B_OTEL_RULE_"
	overrideSuffix = "_THRESHOLD"
)

// --- YAML scalar helpers

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func scalarValue(n *yaml.Node) (any, bool) {
	if n.Kind != yaml.ScalarNode {
		return nil, false
	}
	switch n.Tag {
	case "!!str":
		return n.Value, true
	case "!!bool":
		var b bool
		err := n.Decode(&b)
		return b, err == nil
	case "!!int":
		var i int64
		err := n.Decode(&i)
		return i, err == nil
	case "!!float":
		f, ok := floatValue(n)
		return f, ok
	}
	return nil, false
}

func intValue(n *yaml.Node) (int64, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		return 0, false
	}
	var i int64
	if err := n.Decode(&i); err != nil {
		return 0, false
	}
	return i, true
}

func floatValue(n *yaml.Node) (float64, bool) {
	var f float64
	if err := n.Decode(&f); err != nil {
		return 0, false
	}
	return f, true
}

func shown(n *yaml.Node) string {
	if n == nil {
		return ""
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if len(n.Value) > 60 {
			return n.Value[:57] + "..."
		}
		return n.Value
	case yaml.MappingNode:
		return "<dict>"
	case yaml.SequenceNode:
		return "<list>"
	}
	return ""
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
