package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// asCommand, set in a child's environment, makes the test binary run
// as the rolefsm command itself: the process tests start real nodes
// from it, so that under -race the nodes run with the race detector
// too.
const asCommand = "ROLEFSM_TEST_AS_COMMAND"

func TestMain(m *testing.M) {
	if os.Getenv(asCommand) == "1" {
		main()
		return
	}
	goleak.VerifyTestMain(m)
}
