// Command otelcol-b2b is the b2b-otel OpenTelemetry Collector distribution: the core and contrib
// components of the gateway pipeline (config/gateway.yaml), and later the project's own connectors.
//
//	otelcol-b2b --config config/gateway.yaml
//	otelcol-b2b validate --config config/gateway.yaml
//	otelcol-b2b components
package main

import (
	"log"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"
)

// version is set at build time with -ldflags "-X main.version=..."; the default names the
// collector release the distribution is built on.
var version = "0.161.0-b2b"

func main() {
	if err := otelcol.NewCommand(collectorSettings()).Execute(); err != nil {
		log.Fatalf("otelcol-b2b: %v", err)
	}
}

func collectorSettings() otelcol.CollectorSettings {
	return otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "otelcol-b2b",
			Description: "b2b-otel OpenTelemetry Collector distribution",
			Version:     version,
		},
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				// file: for --config PATH, env: for ${env:VAR:-default}, yaml: for --set overrides.
				// No http(s) provider: a gateway's configuration never comes from the network.
				ProviderFactories: []confmap.ProviderFactory{
					fileprovider.NewFactory(),
					envprovider.NewFactory(),
					yamlprovider.NewFactory(),
				},
				DefaultScheme: "env",
			},
		},
	}
}
