package rolefsmetcd

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
)

// TestDecide runs testdata/decide.txt: the election's decision for one
// channel as a table, what the elector knows in, what it does out
// (client-go's testTryAcquireOrRenew is the model). Refresh with
// -rewrite, then read the diff.
//
//	decide role=ROLE [valid] [mine] [leader=self|N|none] [created=N] [campaign=N] [view=N] [token=N]
//
// leader=self: the lowest key is this session's; leader=N: another
// session's, naming node N (0 for this node's earlier run, or a node
// outside the replica set); none or absent: no key leads.
func TestDecide(t *testing.T) {
	datadriven.RunTest(t, "testdata/decide.txt", func(t *testing.T, d *datadriven.TestData) string {
		if d.Cmd != "decide" {
			t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
		}
		var e election
		var role string
		d.ScanArgs(t, "role", &role)
		r, err := rolefsm.ParseRole(role)
		if err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		e.role = r
		e.valid, e.mine, e.held = d.HasArg("valid"), d.HasArg("mine"), d.HasArg("held")
		if d.HasArg("leader") {
			var l string
			d.ScanArgs(t, "leader", &l)
			switch l {
			case "none":
			case "self":
				e.hasLeader, e.leading = true, true
			default:
				var n uint64
				if _, err := fmt.Sscan(l, &n); err != nil {
					t.Fatalf("%s: leader=%q", d.Pos, l)
				}
				e.hasLeader, e.other = true, replica.NodeID(n)
			}
		}
		scan := func(key string, into *int64) {
			if d.HasArg(key) {
				var v int
				d.ScanArgs(t, key, &v)
				*into = int64(v)
			}
		}
		scan("created", &e.created)
		if d.HasArg("campaign") {
			e.campaigning = true
			scan("campaign", &e.campaign)
		}
		scan("view", &e.viewRev)
		if d.HasArg("token") {
			e.hasToken = true
			scan("token", &e.token.Revision)
		}
		return describe(decide(e)) + "\n"
	})
}

// describe prints a decision as the script reads it.
func describe(dc decision) string {
	var parts []string
	switch {
	case dc.verb == keep:
		parts = append(parts, "keep")
	case dc.won:
		parts = append(parts, verbNames[dc.verb]+" self")
	case dc.verb == stand:
		parts = append(parts, "stand")
	default:
		parts = append(parts, fmt.Sprintf("%s %d", verbNames[dc.verb], dc.leader))
	}
	then := "then "
	if dc.verb == keep {
		parts, then = nil, "" // only etcd's operations, at once
	}
	for _, f := range []struct {
		on   bool
		name string
	}{{dc.withToken, "with token"}, {dc.dropToken, "drop token"}, {dc.campaign, then + "campaign"}, {dc.resign, then + "resign"}} {
		if f.on {
			parts = append(parts, f.name)
		}
	}
	if len(parts) == 0 {
		return "keep"
	}
	return strings.Join(parts, ", ")
}
