package b2bderive // import "github.com/b2b-otel/b2b-otel/collector/connector/b2bderive"

// What a firing becomes: one log record with the attributes of SPEC section 5, the same as the Python
// layer's derived records, with b2b.scope=fleet.

import (
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/engine"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/rules"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/semconv"
)

// severityText follows the Python layer's level names.
var severityText = map[string]string{
	semconv.B2BAlertSeverityCritical: "CRITICAL",
	semconv.B2BAlertSeverityWarning:  "WARNING",
	semconv.B2BAlertSeverityInfo:     "INFO",
}

// writeRecord fills lr with the derived record of a firing.
func writeRecord(lr plog.LogRecord, f *engine.Firing) {
	r := f.Rule
	ts := pcommon.Timestamp(f.AtNanos)
	severityNumber, _ := semconv.SeverityNumber(r.Severity)
	lr.SetTimestamp(ts)
	lr.SetObservedTimestamp(ts)
	lr.SetEventName(r.Event)
	lr.SetSeverityNumber(plog.SeverityNumber(severityNumber))
	lr.SetSeverityText(severityText[r.Severity])
	lr.SetTraceID(f.Facts.TraceID)
	lr.SetSpanID(f.Facts.SpanID)
	lr.Body().SetStr(message(f))
	writeAttributes(lr.Attributes(), f)
}

// writeAttributes puts the attributes of a firing's record (and of its marker span) into attrs.
func writeAttributes(attrs pcommon.Map, f *engine.Firing) {
	r := f.Rule
	respondWithinS, _ := semconv.RespondWithinS(r.Severity)
	attrs.EnsureCapacity(12 + len(f.Group))
	attrs.PutStr(semconv.B2BRuleIDKey, r.ID)
	attrs.PutStr(semconv.B2BAlertSeverityKey, r.Severity)
	attrs.PutStr(semconv.B2BAlertTierKey, r.Tier)
	attrs.PutInt(semconv.B2BAlertRespondWithinSKey, respondWithinS)
	attrs.PutDouble(semconv.B2BObservedValueKey, f.Observed)
	attrs.PutDouble(semconv.B2BThresholdValueKey, f.Threshold)
	// Everything this connector judges is judged across the fleet (all replicas' spans together).
	attrs.PutStr(semconv.B2BScopeKey, semconv.B2BScopeFleet)
	for _, g := range f.Group {
		g.Value.CopyTo(attrs.PutEmpty(g.Key))
	}
	if c, ok := semconv.RuleSecurity(r.ID); ok {
		attrs.PutStr(semconv.EventCategoryKey, c.EventCategory)
		attrs.PutStr(semconv.EventTypeKey, c.EventType)
		attrs.PutStr(semconv.EventOutcomeKey, c.EventOutcome)
		attrs.PutInt(semconv.OCSFClassUIDKey, c.OCSFClassUID)
		attrs.PutInt(semconv.OCSFActivityIDKey, c.OCSFActivityID)
	}
	// What the scrubbing stage found (never the value): the sensitive-data record says where.
	for _, key := range []string{semconv.B2BScrubFieldKey, semconv.B2BScrubPatternKey} {
		if v, ok := f.Facts.Attrs.Get(key); ok {
			v.CopyTo(attrs.PutEmpty(key))
		}
	}
	// Whom the triggering span worked for, as the Python layer's records say it: a per-span rule's
	// record is about that one span (its tenant, user and session); a window rule's keeps only the
	// tenant of the span that made it fire (a window not grouped by it may hold other tenants' spans).
	contextKeys := []string{semconv.B2BTenantIDKey, semconv.UserIDKey, semconv.SessionIDKey}
	if engine.IsWindow(r) {
		contextKeys = contextKeys[:1]
	}
	for _, key := range contextKeys {
		if _, grouped := attrs.Get(key); !grouped {
			if v, ok := f.Facts.Attrs.Get(key); ok {
				v.CopyTo(attrs.PutEmpty(key))
			}
		}
	}
}

// message is the record's body, worded as the Python layer words it.
func message(f *engine.Firing) string {
	r := f.Rule
	parts := make([]string, 0, len(f.Group))
	var agent string
	for _, g := range f.Group {
		parts = append(parts, g.Key+"="+g.Value.AsString())
		if g.Key == semconv.GenAIAgentNameKey {
			agent = g.Value.AsString()
		}
	}
	subject := strings.Join(parts, ", ")
	if subject == "" {
		subject = f.Facts.Name
	}
	orID := func(s string) string {
		if s == "" {
			return r.ID
		}
		return s
	}
	switch r.Kind {
	case semconv.RuleKindLatency:
		name := agent
		if name == "" {
			name = subject
		}
		return fmt.Sprintf("%s exceeded %s threshold (%s)", name, fmtSeconds(f.Threshold), fmtSeconds(f.Observed))
	case semconv.RuleKindRatio:
		what := "failure rate"
		if r.Observe == rules.ObserveSuccessRate {
			what = "success rate"
		}
		return fmt.Sprintf("%s: %s %.1f%% against threshold %.1f%%", orID(subject), what, f.Observed*100, f.Threshold*100)
	case semconv.RuleKindCount:
		// The count first, the group after it, as the Python layer writes it: "secret_key: 3" would read as
		// a secret's key and value to a scrubber downstream.
		if subject == "" {
			return fmt.Sprintf("%.0f matching events within %s", f.Observed, fmtSeconds(r.Window))
		}
		return fmt.Sprintf("%.0f matching events within %s (%s)", f.Observed, fmtSeconds(r.Window), subject)
	case semconv.RuleKindGauge:
		return fmt.Sprintf("%s: value %.6g against threshold %.6g", orID(subject), f.Observed, f.Threshold)
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
