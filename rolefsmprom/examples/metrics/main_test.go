package main

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestScrape starts the example on a loopback port, scrapes /metrics
// over real HTTP, and shuts it down.
func TestScrape(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "127.0.0.1:0", func(a string) { addrs <- a }) }()
	var addr string
	select {
	case addr = <-addrs:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, resp.Body.Close())
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	text := string(body)
	for _, line := range []string{
		`rolefsm_role{channel="orders",role="Leader"} 1`,
		`rolefsm_role{channel="payments",role="Replica"} 1`,
		`rolefsm_role{channel="audit",role="Idle"} 1`,
		`rolefsm_leader_changes_total{channel="orders"} 1`,
		`rolefsm_election_thrash_total{channel="payments"} 1`,
		`rolefsm_generation{channel="audit"} 2`,
		`rolefsm_transitions_total{channel="orders",from="Candidate",signal="ElectionWon",to="Leader"} 1`,
	} {
		assert.Contains(t, text, line)
	}

	cancel()
	require.NoError(t, <-done)
}
