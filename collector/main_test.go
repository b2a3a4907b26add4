package main

import (
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
