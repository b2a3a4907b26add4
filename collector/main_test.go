package main

import (
	"strings"
	"testing"

	"go.opentelemetry.io/collector/otelcol"
)

func TestComponentsHaveNoDuplicateTypes(t *testing.T) {
	if _, err := components(); err != nil {
		t.Fatal(err)
	}
}

// The shipped configurations must load and validate with exactly this distribution's components.
func TestShippedConfigsValidate(t *testing.T) {
	// A gateway, a replica of the two-tier topology (gateway.yaml with gateway-replica.yaml merged
	// over it) and the agent in front of the replicas.
	for _, paths := range [][]string{
		{"config/gateway.yaml"},
		{"config/gateway.yaml", "config/gateway-replica.yaml"},
		{"config/agent.yaml"},
	} {
		path := paths[len(paths)-1]
		t.Run(path, func(t *testing.T) {
			t.Setenv("B2B_STACK_DIR", t.TempDir())
			cmd := otelcol.NewCommand(collectorSettings())
			args := []string{"validate"}
			for _, p := range paths {
				args = append(args, "--config=file:"+p)
			}
			cmd.SetArgs(args)
			if err := cmd.Execute(); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
		})
	}
}

// The gateway's durability switches reach the components: fsync on (spool and sending queue), and a
// spool retain that is not positive stops validation with the setting named.
func TestGatewaySpoolSettingsFromTheEnvironment(t *testing.T) {
	validate := func(t *testing.T) error {
		t.Setenv("B2B_STACK_DIR", t.TempDir())
		cmd := otelcol.NewCommand(collectorSettings())
		cmd.SetArgs([]string{"validate", "--config=file:config/gateway.yaml"})
		return cmd.Execute()
	}
	t.Run("fsync", func(t *testing.T) {
		t.Setenv("B2B_GATEWAY_FSYNC", "true")
		if err := validate(t); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("retain", func(t *testing.T) {
		t.Setenv("B2B_SPOOL_RETAIN", "0s")
		err := validate(t)
		if err == nil || !strings.Contains(err.Error(), "retain=0s: must be positive") {
			t.Fatalf("want the retain error, got %v", err)
		}
	})
}
