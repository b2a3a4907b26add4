package b2bderive // import "github.com/b2b-otel/b2b-otel/collector/connector/b2bderive"

// What a firing becomes: one log record with the attributes of SPEC section 5, the same as the Python
// layer's (b2b_otel/pipeline/records.py), with b2b.scope=fleet.

import (
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// writeRecord fills lr with the derived record of a firing.
func writeRecord(lr plog.LogRecord, f *firing) {
	r := f.rule
	ts := pcommon.Timestamp(f.atNanos)
	lr.SetTimestamp(ts)
	lr.SetObservedTimestamp(ts)
	lr.SetEventName(r.Event)
	lr.SetSeverityNumber(plog.SeverityNumber(severityNumber[r.Severity]))
	lr.SetSeverityText(severityText[r.Severity])
	lr.SetTraceID(f.facts.traceID)
	lr.SetSpanID(f.facts.spanID)
	lr.Body().SetStr(message(f))

	attrs := lr.Attributes()
	attrs.EnsureCapacity(12 + len(f.group))
	attrs.PutStr(attrRuleID, r.ID)
	attrs.PutStr(attrAlertSeverity, r.Severity)
	attrs.PutStr(attrAlertTier, r.Tier)
	attrs.PutInt(attrRespondWithinS, respondWithinS[r.Severity])
	attrs.PutDouble(attrObservedValue, f.observed)
	attrs.PutDouble(attrThresholdValue, f.threshold)
	attrs.PutStr(attrScope, scopeFleet)
	for _, g := range f.group {
		g.value.CopyTo(attrs.PutEmpty(g.key))
	}
	if c, ok := securityClasses[r.ID]; ok {
		attrs.PutStr(attrEventCategory, c.EventCategory)
		attrs.PutStr(attrEventType, c.EventType)
		attrs.PutStr(attrEventOutcome, c.EventOutcome)
		attrs.PutInt(attrOCSFClassUID, c.OCSFClassUID)
		attrs.PutInt(attrOCSFActivityID, c.OCSFActivityID)
	}
	// What the scrubbing stage found (never the value): the sensitive-data record says where.
	for _, key := range []string{attrScrubField, attrScrubPattern} {
		if v, ok := f.facts.attrs.Get(key); ok {
			v.CopyTo(attrs.PutEmpty(key))
		}
	}
}

// message is the record's body, worded as the Python layer words it.
func message(f *firing) string {
	r := f.rule
	parts := make([]string, 0, len(f.group))
	var agent string
	for _, g := range f.group {
		parts = append(parts, g.key+"="+g.value.AsString())
		if g.key == "gen_ai.agent.name" {
			agent = g.value.AsString()
		}
	}
	subject := strings.Join(parts, ", ")
	if subject == "" {
		subject = f.facts.name
	}
	orID := func(s string) string {
		if s == "" {
			return r.ID
		}
		return s
	}
	switch r.Kind {
	case "latency":
		name := agent
		if name == "" {
			name = subject
		}
		return fmt.Sprintf("%s exceeded %s threshold (%s)", name, fmtSeconds(f.threshold), fmtSeconds(f.observed))
	case "ratio":
		what := "failure rate"
		if r.Observe == "success_rate" {
			what = "success rate"
		}
		return fmt.Sprintf("%s: %s %.1f%% against threshold %.1f%%", orID(subject), what, f.observed*100, f.threshold*100)
	case "count":
		return fmt.Sprintf("%s: %.0f matching events within %s", subject, f.observed, fmtSeconds(r.Window))
	case "gauge":
		return fmt.Sprintf("%s: value %.6g against threshold %.6g", orID(subject), f.observed, f.threshold)
	}
	if subject != "" {
		return fmt.Sprintf("%s (%s)", r.Description, subject)
	}
	return r.Description
}

// fmtSeconds writes durations as the seed does: 4.1s, 300s.
func fmtSeconds(v float64) string {
	if v < 100 {
		return fmt.Sprintf("%.3gs", v)
	}
	return fmt.Sprintf("%.0fs", v)
}
