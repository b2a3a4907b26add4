package b2bderive // import "github.com/b2b-otel/b2b-otel/collector/connector/b2bderive"

import (
	"errors"
	"fmt"
	"os"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/engine"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/rules"
)

// The modes of the connector (Config.Mode).
const (
	// ModeJudge judges spans and metrics and emits derived records and marker spans (a gateway).
	ModeJudge = "judge"
	// ModeRoute emits, for each span a window rule reads, a copy keyed by the rule's group for the
	// loadbalancing exporter (an agent collector in front of several gateway replicas).
	ModeRoute = "route"
)

// Config of the b2bderive connector.
type Config struct {
	// RulesFile is the rules file (docs/rules.md) to evaluate; empty means the built-in rules, a copy
	// of b2b_otel/rules/default_rules.yaml.
	RulesFile string `mapstructure:"rules_file"`
	// MaxGroups bounds the groups each window rule (ratio, count) and each gauge rule keeps; past it
	// the least suspicious group is evicted. Default 10000.
	MaxGroups int `mapstructure:"max_groups"`
	// ThresholdOverrides maps a rule id to a threshold, with the meaning of the Python layer's
	// B2B_OTEL_RULE_<ID>_THRESHOLD: a duration for latency rules ("0.5s"), a number otherwise. It
	// wins over those variables, which the connector reads too.
	ThresholdOverrides map[string]any `mapstructure:"threshold_overrides"`
	// Mode is judge (default: derived records and marker spans) or route (window copies for the
	// loadbalancing exporter of an agent collector).
	Mode string `mapstructure:"mode"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// Validate loads and validates the rules file with the overrides (and the environment's
// B2B_OTEL_RULE_<ID>_THRESHOLD variables) applied, so that a bad rule stops `otelcol-b2b validate`
// and start-up with the file, line and field (or the variable) at fault.
func (c *Config) Validate() error {
	if c.MaxGroups < 1 {
		return fmt.Errorf("max_groups=%d: must be at least 1 (default %d)", c.MaxGroups, engine.DefaultMaxGroups)
	}
	if c.Mode != "" && c.Mode != ModeJudge && c.Mode != ModeRoute {
		return fmt.Errorf("mode=%s: accepted: %s (default) or %s", c.Mode, ModeJudge, ModeRoute)
	}
	if _, _, err := rules.LoadWithEnvironment(c.RulesFile, c.ThresholdOverrides, os.Environ()); err != nil {
		return errors.Join(errors.New("rules_file: invalid rules"), err)
	}
	return nil
}

func (c *Config) mode() string {
	if c.Mode == "" {
		return ModeJudge
	}
	return c.Mode
}
