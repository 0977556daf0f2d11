module github.com/rolefsm/rolefsm/rolefsmotel

go 1.25.0

require (
	github.com/rolefsm/rolefsm v0.0.0-20261201111143-6521db0135da
	github.com/stretchr/testify v1.12.1
	go.opentelemetry.io/otel v1.47.0
	go.opentelemetry.io/otel/metric v1.47.0
	go.opentelemetry.io/otel/sdk/metric v1.47.0
	go.uber.org/goleak v1.3.0
)
