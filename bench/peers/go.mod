module github.com/rolefsm/rolefsm/bench/peers

go 1.25.0

require (
	github.com/looplab/fsm v1.0.3
	github.com/qmuntal/stateless v1.7.2
	github.com/rolefsm/rolefsm v0.0.0
)

require go.uber.org/goleak v1.3.0

replace github.com/rolefsm/rolefsm => ../..
