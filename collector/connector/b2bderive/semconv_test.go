package b2bderive

import (
	"os"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/rules"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/semconv"
)

// docs/semconv/rules.yaml is the reference of the names attached to the default rules; the built-in
// rules and the security classification generated into internal/semconv must say the same.
func TestSecurityClassesMatchDocs(t *testing.T) {
	data, err := os.ReadFile("../../../docs/semconv/rules.yaml")
	if os.IsNotExist(err) {
		t.Skip("docs/semconv/rules.yaml not found (the collector module outside its repository)")
	}
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []struct {
				ID       string `yaml:"id"`
				Severity string `yaml:"severity"`
				Event    string `yaml:"event"`
				Security *struct {
					Category   string `yaml:"event.category"`
					Type       string `yaml:"event.type"`
					Outcome    string `yaml:"event.outcome"`
					ClassUID   int64  `yaml:"ocsf.class_uid"`
					ActivityID int64  `yaml:"ocsf.activity_id"`
				} `yaml:"security"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	builtIn := map[string]*rules.Rule{}
	for _, r := range defaultRules(t, nil).Rules {
		builtIn[r.ID] = r
	}
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			documented[r.ID] = true
			if rule, ok := builtIn[r.ID]; ok && (rule.Event != r.Event || rule.Severity != r.Severity) {
				t.Errorf("%s: built-in rule emits %s/%s, docs say %s/%s", r.ID, rule.Event, rule.Severity, r.Event, r.Severity)
			}
			got, ok := semconv.RuleSecurity(r.ID)
			if r.Security == nil {
				if ok {
					t.Errorf("%s: classified here, not in the docs", r.ID)
				}
				continue
			}
			want := semconv.SecurityClass{
				EventCategory: r.Security.Category, EventType: r.Security.Type, EventOutcome: r.Security.Outcome,
				OCSFClassUID: r.Security.ClassUID, OCSFActivityID: r.Security.ActivityID,
			}
			if got != want {
				t.Errorf("%s: %+v, docs say %+v", r.ID, got, want)
			}
		}
	}
	for _, id := range semconv.RuleIDs() {
		if !documented[id] {
			t.Errorf("%s: a generated rule id that is not a documented rule", id)
		}
	}
	if len(documented) == 0 {
		t.Fatal("no rules read from docs/semconv/rules.yaml")
	}
}
