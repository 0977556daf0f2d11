module github.com/rolefsm/rolefsm

go 1.25.0

require (
	github.com/cockroachdb/datadriven v1.0.3
	github.com/flynn/noise v1.1.0
	github.com/looplab/fsm v1.0.3
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
	golang.org/x/crypto v0.55.0
	pgregory.net/rapid v1.2.0
)

require (
	github.com/pmezard/go-difflib v1.0.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/sys v0.47.0 // indirect
)
