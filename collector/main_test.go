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
	for _, path := range []string{"config/gateway.yaml"} {
		t.Run(path, func(t *testing.T) {
			t.Setenv("B2B_STACK_DIR", t.TempDir())
			cmd := otelcol.NewCommand(collectorSettings())
			cmd.SetArgs([]string{"validate", "--config=file:" + path})
			if err := cmd.Execute(); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
		})
	}
}
