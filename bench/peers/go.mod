module github.com/rolefsm/rolefsm/bench/peers

go 1.25.0

require (
	github.com/looplab/fsm v1.0.3
	github.com/qmuntal/stateless v1.7.2
	github.com/rolefsm/rolefsm v0.0.0
)

require (
	github.com/hashicorp/raft v1.8.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/fatih/color v1.13.0 // indirect
	github.com/flynn/noise v1.1.0 // indirect
	github.com/hashicorp/go-hclog v1.6.3 // indirect
	github.com/hashicorp/go-immutable-radix v1.3.1 // indirect
	github.com/hashicorp/go-metrics v0.7.0 // indirect
	github.com/hashicorp/go-msgpack/v2 v2.1.5 // indirect
	github.com/hashicorp/golang-lru v1.0.2 // indirect
	github.com/mattn/go-colorable v0.1.12 // indirect
	github.com/mattn/go-isatty v0.0.14 // indirect
	golang.org/x/crypto v0.55.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
)

replace github.com/rolefsm/rolefsm => ../..
