package main

// rolefsm status: one table of the whole cluster from every node's
// GET /status, as etcdctl endpoint status -w table or consul members
// give one.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/replica"
)

const statusSynopsis = `status [-format table|json] [-watch INTERVAL] [-timeout D] HOST:PORT...

Asks every node's -http address for GET /status and prints one view of
the cluster: per channel, each node's role and the leader it follows,
and a verdict (one leader that the others follow, two leaders, no
leader, followers that disagree); then the nodes that did not answer
and the peers that nobody hears or whose datagrams fail authentication.
Exit 0 when every channel has one leader followed by every node that
answered and every node answered and is heard; 1 otherwise.`

// statusView is the cluster as rolefsm status sees it; it is also the
// -format json output.
type statusView struct {
	Nodes    []nodeAnswer     `json:"nodes"`
	Channels []channelVerdict `json:"channels"`
	Problems []string         `json:"problems"`
}

// nodeAnswer is one node's answer, or why there is none.
type nodeAnswer struct {
	Addr   string      `json:"addr"`
	Error  string      `json:"error,omitempty"`
	Status *nodeStatus `json:"status,omitempty"`
}

// channelVerdict is one channel across the nodes that answered.
type channelVerdict struct {
	Name string `json:"name"`
	// Roles is each answering node's role and leader, by node id.
	Roles   map[replica.NodeID]channelStatus `json:"roles"`
	Leaders []replica.NodeID                 `json:"leaders"`
	OK      bool                             `json:"ok"`
	Verdict string                           `json:"verdict"`
}

func runStatus(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return statusCommand(ctx, args, stdout, stderr)
}

func statusCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", statusSynopsis, stderr)
	format := fs.String("format", "table", "output format: table or json")
	watch := fs.Duration("watch", 0, "redraw every INTERVAL until interrupted (0: once)")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for each node")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	switch {
	case fs.NArg() == 0:
		return usageError(fs, errors.New("give the nodes' -http addresses, HOST:PORT"))
	case *format != "table" && *format != "json":
		return usageError(fs, fmt.Errorf("-format %q: want table or json", *format))
	case *watch < 0 || *watch > 0 && *watch < 100*time.Millisecond:
		return usageError(fs, fmt.Errorf("-watch %v: 0, or at least 100ms", *watch))
	case *timeout <= 0:
		return usageError(fs, fmt.Errorf("-timeout %v: above 0", *timeout))
	}
	addrs := fs.Args()
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(strings.TrimPrefix(a, "http://")); err != nil {
			return usageError(fs, fmt.Errorf("%q is not HOST:PORT", a))
		}
	}
	client := &http.Client{Timeout: *timeout,
		// A node answers itself: a redirect elsewhere is not its answer.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for {
		v := gather(ctx, client, addrs)
		if *watch > 0 && *format == "table" {
			fmt.Fprint(stdout, "\x1b[H\x1b[2J") // home, clear: a redraw
			fmt.Fprintf(stdout, "%s, every %v\n\n", time.Now().Format(time.TimeOnly), *watch)
		}
		if *format == "json" {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(v)
		} else {
			v.render(stdout)
		}
		if *watch == 0 {
			if len(v.Problems) > 0 {
				return exitRejected
			}
			return exitOK
		}
		select {
		case <-ctx.Done():
			return exitOK
		case <-time.After(*watch):
		}
	}
}

// gather asks every node, in parallel, and judges what they said.
func gather(ctx context.Context, client *http.Client, addrs []string) statusView {
	answers := make([]nodeAnswer, len(addrs))
	done := make(chan struct{})
	for i, a := range addrs {
		go func() {
			defer func() { done <- struct{}{} }()
			answers[i] = ask(ctx, client, a)
		}()
	}
	for range addrs {
		<-done
	}
	return judge(answers)
}

func ask(ctx context.Context, client *http.Client, addr string) nodeAnswer {
	a := nodeAnswer{Addr: addr}
	url := addr
	if !strings.HasPrefix(url, "http://") {
		url = "http://" + url
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/status", nil)
	if err != nil {
		a.Error = err.Error()
		return a
	}
	resp, err := client.Do(req)
	if err != nil {
		if u := errors.Unwrap(err); u != nil {
			err = u // not the URL again
		}
		a.Error = "unreachable: " + err.Error()
		return a
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		a.Error = "GET /status: " + resp.Status
		return a
	}
	var st nodeStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxStatusBody)).Decode(&st); err != nil {
		a.Error = "GET /status: not a rolefsm node's status: " + err.Error()
		return a
	}
	if err := st.check(); err != nil {
		a.Error = "GET /status: not a rolefsm node's status: " + err.Error()
		return a
	}
	a.Status = &st
	return a
}

// maxStatusBody bounds one node's answer: 100,000 channels' status is
// some 8 MiB.
const maxStatusBody = 16 << 20

// check refuses an answer that no rolefsm node gives: no id, a role
// that is not one, a peer of id 0.
func (st *nodeStatus) check() error {
	if st.ID == 0 {
		return errors.New("no node id")
	}
	for _, c := range st.Channels {
		if _, err := rolefsm.ParseRole(c.Role); err != nil || c.Name == "" {
			return fmt.Errorf("channel %q with role %q", c.Name, c.Role)
		}
	}
	for _, p := range st.Peers {
		if p.ID == 0 || p.ID == st.ID {
			return fmt.Errorf("a peer of id %d", p.ID)
		}
	}
	return nil
}

// judge builds the view: every channel's verdict, and the problems.
func judge(answers []nodeAnswer) statusView {
	v := statusView{Nodes: answers, Problems: []string{}}
	var order []string
	byName := map[string]*channelVerdict{}
	var up []replica.NodeID
	seen := map[replica.NodeID]string{}
	for i, a := range answers {
		if a.Status == nil {
			v.Problems = append(v.Problems, fmt.Sprintf("%s: %s", a.Addr, a.Error))
			continue
		}
		if other, dup := seen[a.Status.ID]; dup {
			// Two processes with one id (or one address given twice):
			// the second is not counted.
			v.Problems = append(v.Problems, fmt.Sprintf("%s and %s both answer as node %d: two processes with one id, or an address given twice", other, a.Addr, a.Status.ID))
			answers[i].Error = fmt.Sprintf("answers as node %d, as %s does", a.Status.ID, other)
			answers[i].Status = nil
			continue
		}
		seen[a.Status.ID] = a.Addr
		up = append(up, a.Status.ID)
		for _, c := range a.Status.Channels {
			cv := byName[c.Name]
			if cv == nil {
				cv = &channelVerdict{Name: c.Name, Roles: map[replica.NodeID]channelStatus{}}
				byName[c.Name] = cv
				order = append(order, c.Name)
			}
			cv.Roles[a.Status.ID] = c
		}
	}
	for _, name := range order {
		cv := byName[name]
		cv.judge()
		if !cv.OK {
			v.Problems = append(v.Problems, fmt.Sprintf("%s: %s", cv.Name, cv.Verdict))
		}
		v.Channels = append(v.Channels, *cv)
	}
	v.Problems = append(v.Problems, peerProblems(answers, up)...)
	return v
}

func (cv *channelVerdict) judge() {
	followed := map[replica.NodeID]bool{}
	var lost []replica.NodeID // Replicas and Candidates that follow nobody
	for _, id := range slices.Sorted(maps.Keys(cv.Roles)) {
		c := cv.Roles[id]
		switch {
		case c.Role == "Leader":
			cv.Leaders = append(cv.Leaders, id)
		case c.Role == "Idle":
		case c.Leader == 0:
			lost = append(lost, id)
		default:
			followed[c.Leader] = true
		}
	}
	ids := func(ns []replica.NodeID) string {
		s := make([]string, len(ns))
		for i, n := range ns {
			s[i] = fmt.Sprint(n)
		}
		return strings.Join(s, ", ")
	}
	switch {
	case len(cv.Leaders) > 1:
		cv.Verdict = "TWO LEADERS: " + ids(cv.Leaders)
	case len(cv.Leaders) == 0:
		cv.Verdict = "NO LEADER"
		if len(followed) > 0 {
			cv.Verdict += " among the nodes that answered; they follow " + ids(slices.Sorted(maps.Keys(followed)))
		}
	case len(lost) > 0:
		cv.Verdict = fmt.Sprintf("%d leads; %s follow nobody", cv.Leaders[0], ids(lost))
	case len(followed) > 1 || len(followed) == 1 && !followed[cv.Leaders[0]]:
		cv.Verdict = fmt.Sprintf("%d leads; others follow %s", cv.Leaders[0], ids(slices.Sorted(maps.Keys(followed))))
	default:
		cv.OK, cv.Verdict = true, fmt.Sprintf("ok: %d leads", cv.Leaders[0])
	}
}

// peerProblems lists the peers that no answering node hears, and the
// addresses whose datagrams fail authentication.
func peerProblems(answers []nodeAnswer, up []replica.NodeID) []string {
	heardBy := map[replica.NodeID][]replica.NodeID{}
	known := map[replica.NodeID]bool{}
	var out []string
	for _, a := range answers {
		if a.Status == nil {
			continue
		}
		for _, p := range a.Status.Peers {
			known[p.ID] = true
			if p.Healthy {
				heardBy[p.ID] = append(heardBy[p.ID], a.Status.ID)
			}
			if p.AuthFailures > 0 {
				out = append(out, fmt.Sprintf("node %d: %d datagrams from node %d's address %s failed authentication (another cluster's key, or a key not configured)",
					a.Status.ID, p.AuthFailures, p.ID, p.Addr))
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(known)) {
		if len(heardBy[id]) == 0 {
			why := "down, or unreachable at its address"
			if slices.Contains(up, id) {
				why = "it answers here, so its peers' view of its address or key is wrong"
			}
			out = append(out, fmt.Sprintf("node %d: heard by no node that answered (%s)", id, why))
		}
	}
	return out
}

// printable escapes what a terminal would act on (control characters,
// escape sequences, a tab that would forge a column): what a node
// reports is shown, never obeyed.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			q := strconv.Quote(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}

// render prints the view as a table, then the nodes that did not
// answer and the problems.
func (v statusView) render(w io.Writer) {
	var ids []replica.NodeID
	for _, a := range v.Nodes {
		if a.Status != nil {
			ids = append(ids, a.Status.ID)
		}
	}
	slices.Sort(ids)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "CHANNEL")
	for _, id := range ids {
		fmt.Fprintf(tw, "\tNODE %d", id)
	}
	fmt.Fprintln(tw, "\tVERDICT")
	for _, cv := range v.Channels {
		fmt.Fprint(tw, printable(cv.Name))
		for _, id := range ids {
			c, ok := cv.Roles[id]
			switch {
			case !ok:
				fmt.Fprint(tw, "\t-")
			case c.Role == "Replica" || c.Role == "Candidate":
				if c.Leader != 0 {
					fmt.Fprintf(tw, "\t%s→%d", printable(c.Role), c.Leader)
				} else {
					fmt.Fprintf(tw, "\t%s", printable(c.Role))
				}
			default:
				fmt.Fprintf(tw, "\t%s", printable(c.Role))
			}
		}
		fmt.Fprintf(tw, "\t%s\n", printable(cv.Verdict))
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, a := range v.Nodes {
		if a.Status != nil {
			fmt.Fprintf(w, "node %d at %s: %s, %s\n", a.Status.ID, printable(a.Addr), countOf(len(a.Status.Channels), "channel"), countOf(len(a.Status.Peers), "peer"))
		}
	}
	if len(v.Problems) == 0 {
		fmt.Fprintln(w, "no problem: every channel has one leader that the others follow, and every node is heard")
		return
	}
	fmt.Fprintf(w, "%s:\n", countOf(len(v.Problems), "problem"))
	for _, p := range v.Problems {
		fmt.Fprintln(w, "  "+printable(p))
	}
}
