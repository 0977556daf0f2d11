package rolefsmprom_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/rolefsmprom"
)

func ExampleNewCollector() {
	c, _ := rolefsm.NewCoordinator(rolefsm.WithName("orders"))
	_, _ = c.Fire(context.Background(), rolefsm.CapabilitySelected)

	reg := prometheus.NewRegistry()
	reg.MustRegister(rolefsmprom.NewCollector(c))

	err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP rolefsm_role 1 for the channel's current role, 0 for the others.
# TYPE rolefsm_role gauge
rolefsm_role{channel="orders",role="Candidate"} 0
rolefsm_role{channel="orders",role="Idle"} 0
rolefsm_role{channel="orders",role="Leader"} 0
rolefsm_role{channel="orders",role="Replica"} 1
`), "rolefsm_role")
	fmt.Println(err)
	// Output: <nil>
}

func ExampleSet() {
	set := rolefsmprom.NewSet(rolefsmprom.WithMaxChannels(2))
	for _, name := range []string{"a", "b", "c"} {
		c, _ := rolefsm.NewCoordinator(rolefsm.WithName(name))
		own, err := set.Add(c)
		fmt.Println(name, own, err)
	}
	// 2 channels of their own and the overflow bucket, 11 series each
	// while no transition has fired (23 each with WithAllTransitions).
	fmt.Println(testutil.CollectAndCount(set))
	// Output:
	// a true <nil>
	// b true <nil>
	// c false <nil>
	// 33
}
