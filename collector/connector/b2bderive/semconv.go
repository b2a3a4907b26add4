package b2bderive // import "github.com/b2b-otel/b2b-otel/collector/connector/b2bderive"

// The names of the outside world this connector writes, in one place (the Go side of
// b2b_otel/semconv.py; docs/semconv/ is the reference both are tested against).

import _ "embed"

// defaultRulesYAML is a copy of b2b_otel/rules/default_rules.yaml (TestEmbeddedRulesMatchPython keeps
// the two identical): the rules in force when rules_file is empty.
//
//go:embed default_rules.yaml
var defaultRulesYAML []byte

const (
	eventSLABreach = "b2b.sla.breach"
	eventSecurity  = "b2b.security.event"

	attrRuleID         = "b2b.rule.id"
	attrAlertSeverity  = "b2b.alert.severity"
	attrAlertTier      = "b2b.alert.tier"
	attrRespondWithinS = "b2b.alert.respond_within_s"
	attrObservedValue  = "b2b.observed.value"
	attrThresholdValue = "b2b.threshold.value"
	attrScope          = "b2b.scope"
	attrDerived        = "b2b.derived"
	attrScrubField     = "b2b.scrub.field"
	attrScrubPattern   = "b2b.scrub.pattern"
	attrEventCategory  = "event.category"
	attrEventType      = "event.type"
	attrEventOutcome   = "event.outcome"
	attrOCSFClassUID   = "ocsf.class_uid"
	attrOCSFActivityID = "ocsf.activity_id"

	// Everything this connector judges is judged across the fleet (all replicas' spans together).
	scopeFleet = "fleet"

	// The instrumentation scope of the emitted log records.
	scopeName = "github.com/b2b-otel/b2b-otel/collector/connector/b2bderive"
)

// severityNumber is the OTel log severity number of each alert severity (SPEC section 5).
var severityNumber = map[string]int32{"critical": 21, "warning": 13, "info": 9}

// severityText follows the Python layer's level names.
var severityText = map[string]string{"critical": "CRITICAL", "warning": "WARNING", "info": "INFO"}

// respondWithinS is b2b.alert.respond_within_s per severity.
var respondWithinS = map[string]int64{"critical": 300, "warning": 3600, "info": 86400}

// securityClass is the ECS and OCSF classification written on a security rule's record.
type securityClass struct {
	EventCategory  string
	EventType      string
	EventOutcome   string
	OCSFClassUID   int64
	OCSFActivityID int64
}

// securityClasses copies semconv.RULES (docs/semconv/rules.yaml; TestSecurityClassesMatchDocs): as in
// the Python layer, the classification belongs to the rule id, whatever file defines the rule.
var securityClasses = map[string]securityClass{
	"security.login.bruteforce":     {"authentication", "start", "failure", 3002, 1},
	"security.privilege.escalation": {"iam", "change", "success", 3005, 1},
	"security.access.violation":     {"api", "denied", "failure", 6004, 2},
	"security.sensitive_data":       {"intrusion_detection", "info", "unknown", 2006, 1},
	"security.access.unusual":       {"api", "denied", "failure", 6004, 2},
}
