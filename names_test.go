package rolefsm

// Roles and signals by name, as text, and the matrix listed.

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDestination(t *testing.T) {
	want := map[Signal]Role{
		CapabilitySelected: Replica, MissedHeartbeats: Candidate, ElectionWon: Leader,
		ElectionLost: Replica, GracefulRelinquish: Idle, DiskPressureWithdraw: Idle,
		LeaderDiskPressureWithdraw: Idle, CandidateDiskPressureWithdraw: Idle,
		ChannelClose: Idle, PeerLeaderObserved: Replica,
	}
	for sig, to := range want {
		got, ok := Destination(sig)
		assert.True(t, ok)
		assert.Equal(t, to, got, "%v", sig)
	}
	for _, sig := range []Signal{0, 11, 255} {
		_, ok := Destination(sig)
		assert.False(t, ok)
	}
}

func TestNamesAndEnumeration(t *testing.T) {
	assert.Equal(t, []Role{Idle, Replica, Candidate, Leader}, Roles())
	assert.Equal(t, Role(0), Idle, "Idle is the zero value")
	sigs := Signals()
	require.Len(t, sigs, 10)
	for i, s := range sigs {
		assert.Equal(t, Signal(i+1), s)
		assert.Equal(t, signalText[i], s.String())
	}
	for r, name := range roleText {
		assert.Equal(t, name, r.String())
	}
	assert.Equal(t, "Role(7)", Role(7).String())
	assert.Equal(t, "Role(255)", Role(255).String())
	assert.Equal(t, "Signal(0)", Signal(0).String())
	assert.Equal(t, "Signal(11)", Signal(11).String())
	assert.Equal(t, "Idle → Replica (CapabilitySelected)", Transition{Idle, Replica, CapabilitySelected}.String())
}

func TestParse(t *testing.T) {
	for _, r := range Roles() {
		for _, in := range []string{r.String(), strings.ToLower(r.String()), strings.ToUpper(r.String())} {
			got, err := ParseRole(in)
			require.NoError(t, err)
			assert.Equal(t, r, got)
		}
	}
	for _, s := range Signals() {
		for _, in := range []string{s.String(), strings.ToLower(s.String())} {
			got, err := ParseSignal(in)
			require.NoError(t, err)
			assert.Equal(t, s, got)
		}
	}
	for _, in := range []string{"", "Follower", " Leader", "Leader ", "Role(1)", "0", "\xff\xfe", strings.Repeat("x", 10000)} {
		_, err := ParseRole(in)
		require.Error(t, err, "%q", in)
		assert.Contains(t, err.Error(), "valid: Idle, Replica, Candidate, Leader")
		assert.Less(t, len(err.Error()), 250, "a long input is cut in the message")
		var pe *ParseError
		assert.ErrorAs(t, err, &pe)
	}
	for _, in := range []string{"", "Signal(0)", "Close", "\x00", strings.Repeat("é", 5000)} {
		_, err := ParseSignal(in)
		require.Error(t, err, "%q", in)
		assert.Contains(t, err.Error(), "valid: CapabilitySelected, MissedHeartbeats, ElectionWon, ElectionLost, GracefulRelinquish, DiskPressureWithdraw, LeaderDiskPressureWithdraw, CandidateDiskPressureWithdraw, ChannelClose, PeerLeaderObserved")
	}
	_, err := ParseRole("Follower")
	assert.EqualError(t, err, `rolefsm: unknown role "Follower" (valid: Idle, Replica, Candidate, Leader)`)
}

func TestTextRoundTrip(t *testing.T) {
	type msg struct {
		Role   Role   `json:"role"`
		Signal Signal `json:"signal"`
	}
	b, err := json.Marshal(msg{Leader, PeerLeaderObserved})
	require.NoError(t, err)
	assert.JSONEq(t, `{"role":"Leader","signal":"PeerLeaderObserved"}`, string(b))
	var m msg
	require.NoError(t, json.Unmarshal([]byte(`{"role":"candidate","signal":"electionwon"}`), &m))
	assert.Equal(t, msg{Candidate, ElectionWon}, m)

	_, err = Role(9).MarshalText()
	assert.Error(t, err)
	_, err = Signal(0).MarshalText()
	assert.Error(t, err)
	_, err = json.Marshal(msg{Role: Leader})
	assert.Error(t, err, "the zero Signal must not be written")

	r := Replica
	assert.Error(t, r.UnmarshalText([]byte("nope")))
	assert.Equal(t, Replica, r, "a failed UnmarshalText leaves the value unchanged")
	s := ElectionLost
	assert.Error(t, s.UnmarshalText(nil))
	assert.Equal(t, ElectionLost, s)
}

func TestMatrixListsThe13Triples(t *testing.T) {
	var want []Transition
	for _, row := range expected {
		for i := 0; i < 10; i++ {
			if row.outcome[i] == '.' {
				want = append(want, Transition{From: row.from, To: row.to, Signal: Signal(i + 1)})
			}
		}
	}
	got := Matrix()
	assert.ElementsMatch(t, want, got)
	assert.Equal(t, Transition{Idle, Replica, CapabilitySelected}, got[0], "declaration order")
	assert.Equal(t, Transition{Leader, Replica, PeerLeaderObserved}, got[len(got)-1], "declaration order")
}
