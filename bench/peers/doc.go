// Package peers benchmarks rolefsm against the state-machine libraries
// it is measured by, walking the same cycle in the same run. It is a
// module of its own so that rolefsm's go.mod gains no dependency from it.
package peers
