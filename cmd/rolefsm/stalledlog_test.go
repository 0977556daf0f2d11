package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStalledLogDoesNotStallTheNode runs a node process whose stderr is
// a pipe nobody reads, with 3,000 channels: their audit lines overflow
// the pipe's buffer at once. Its heartbeats still reach its peer (this
// test, listening as node 2) every interval, and /metrics counts the
// lines it dropped.
func TestStalledLogDoesNotStallTheNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real process")
	}
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer peer.Close()
	self := freeUDPAddr(t)
	httpAddr := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		return l.Addr().String()
	}()
	r, w, err := os.Pipe() // nobody reads r
	require.NoError(t, err)
	defer r.Close()
	cmd := exec.Command(os.Args[0], "node", "-id", "1", "-listen", self, "-insecure", "-http", httpAddr,
		"-peers", "2="+peer.LocalAddr().String(), "-channels-n", "3000", "-heartbeat", "100ms")
	cmd.Env = append(os.Environ(), asCommand+"=1")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = w
	require.NoError(t, cmd.Start())
	_ = w.Close() // the child holds its end
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- line
	}()
	select {
	case line := <-lines:
		require.Contains(t, line, "listening")
	case <-time.After(20 * time.Second): // a bound: opening 3,000 channels takes milliseconds
		t.Fatal("the node never said it listens: its log stalled it while opening its channels")
	}

	// 3,000 Idle → Replica lines, then as many elections: far beyond a
	// pipe's 64 KiB. Heartbeats go on: 20 arrive, as from a node whose
	// log is read.
	buf := make([]byte, 1<<16)
	for got := 0; got < 20; {
		// A bound per heartbeat (they come every 100 ms), not a timing
		// claim: a node whose log stalled it sends none.
		require.NoError(t, peer.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, _, err := peer.ReadFromUDP(buf)
		require.NoError(t, err, "heartbeats stopped while the log was blocked")
		got++
	}
	var dropped string
	for deadline := time.Now().Add(patience); time.Now().Before(deadline); {
		resp, err := http.Get("http://" + httpAddr + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			_ = resp.Body.Close()
			for _, l := range strings.Split(string(body), "\n") {
				if strings.HasPrefix(l, "rolefsm_log_dropped_total ") {
					dropped = strings.TrimPrefix(l, "rolefsm_log_dropped_total ")
				}
			}
			if dropped != "" && dropped != "0" {
				break
			}
		}
		time.Sleep(20 * time.Millisecond) // a poll of a real process
	}
	assert.NotEqual(t, "", dropped)
	assert.NotEqual(t, "0", dropped, "the lines stderr could not take were counted")
}
