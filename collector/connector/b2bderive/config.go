package b2bderive // import "github.com/b2b-otel/b2b-otel/collector/connector/b2bderive"

import (
	"errors"
	"fmt"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/engine"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/rules"
)

// Config of the b2bderive connector.
type Config struct {
	// RulesFile is the rules file (docs/rules.md) to evaluate; empty means the built-in rules, a copy
	// of b2b_otel/rules/default_rules.yaml.
	RulesFile string `mapstructure:"rules_file"`
	// MaxGroups bounds the groups each window rule (ratio, count) keeps; past it the least recently
	// seen group is evicted. Default 10000.
	MaxGroups int `mapstructure:"max_groups"`
	// ThresholdOverrides maps a rule id to a threshold, with the meaning of the Python layer's
	// B2B_OTEL_RULE_<ID>_THRESHOLD: a duration for latency rules ("0.5s"), a number otherwise.
	ThresholdOverrides map[string]any `mapstructure:"threshold_overrides"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// Validate loads and validates the rules file with the overrides applied, so that a bad rule stops
// `otelcol-b2b validate` and start-up with the file, line and field at fault.
func (c *Config) Validate() error {
	if c.MaxGroups < 1 {
		return fmt.Errorf("max_groups=%d: must be at least 1 (default %d)", c.MaxGroups, engine.DefaultMaxGroups)
	}
	if _, err := rules.Load(c.RulesFile, c.ThresholdOverrides); err != nil {
		return errors.Join(errors.New("rules_file: invalid rules"), err)
	}
	return nil
}
