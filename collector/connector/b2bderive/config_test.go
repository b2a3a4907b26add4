package b2bderive

import (
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/metadata"
)

func TestConfigLoadsFromTheCollectorConfiguration(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id   component.ID
		want *Config
	}{
		{component.NewID(metadata.Type), &Config{MaxGroups: 10000}},
		{component.NewIDWithName(metadata.Type, "custom"), &Config{
			RulesFile: "testdata/rules_valid.yaml", MaxGroups: 500,
			ThresholdOverrides: map[string]any{"orders.slow": "0.5s", "orders.failure_rate.high": 0.2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig()
			sub, err := cm.Sub(tt.id.String())
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.Unmarshal(cfg); err != nil {
				t.Fatal(err)
			}
			if err := confmap.Validate(cfg); err != nil {
				t.Fatal(err)
			}
			got := cfg.(*Config)
			if got.RulesFile != tt.want.RulesFile || got.MaxGroups != tt.want.MaxGroups || len(got.ThresholdOverrides) != len(tt.want.ThresholdOverrides) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			for k, v := range tt.want.ThresholdOverrides {
				if got.ThresholdOverrides[k] != v {
					t.Errorf("%s = %#v, want %#v", k, got.ThresholdOverrides[k], v)
				}
			}
		})
	}
}

func TestConfigValidateNamesWhatIsWrong(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"max_groups below 1", Config{MaxGroups: 0}, []string{"max_groups=0: must be at least 1"}},
		{"missing rules file", Config{MaxGroups: 1, RulesFile: "testdata/nope.yaml"}, []string{"testdata/nope.yaml: cannot read the rules file"}},
		{"invalid rules file", Config{MaxGroups: 1, RulesFile: "testdata/rules_invalid.yaml"}, []string{
			"testdata/rules_invalid.yaml:10: rules[0].threshold=3 sec: not a duration; accepted: a duration such as 30, 30s, 500ms, 5m or 1h",
			"testdata/rules_invalid.yaml:11: rules[0].bogus=1: unknown field; accepted: id, kind,",
			"testdata/rules_invalid.yaml:12: rules[1].failure=(missing): required for a ratio rule",
		}},
		{"override of an unknown rule", Config{MaxGroups: 1, ThresholdOverrides: map[string]any{"agent.execution.slwo": "1s"}},
			[]string{"threshold_overrides: agent.execution.slwo: no rule has this id"}},
		{"override of an event rule", Config{MaxGroups: 1, ThresholdOverrides: map[string]any{"security.access.violation": 1}},
			[]string{"security.access.violation=1: an event rule has no threshold"}},
		{"override with a bad duration", Config{MaxGroups: 1, ThresholdOverrides: map[string]any{"agent.execution.slow": "fast"}},
			[]string{"agent.execution.slow=fast: not a duration"}},
		{"override of a ratio out of range", Config{MaxGroups: 1, ThresholdOverrides: map[string]any{"agent.success_rate.low": 95}},
			[]string{"a ratio threshold is a share between 0 and 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil {
				t.Fatal("validated")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error\n%s\ndoes not say %q", err, want)
				}
			}
		})
	}
}
