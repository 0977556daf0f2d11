package rolefsm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Record describes one transition attempt, as observers receive it.
//
// For a committed transition Err is nil and Generation is the coordinator's
// generation after the commit (1 for the first commit). For a rejected
// one Err is the *InvalidPairError or *SignalMismatchError, From is the
// role the attempt was validated against and Generation the generation at
// that moment (nothing was committed).
type Record struct {
	// Name is the coordinator's name (WithName), so that one observer
	// can serve many coordinators.
	Name string
	Transition
	Generation uint64
	At         time.Time
	Err        error
	// ColdStart marks a committed MissedHeartbeats transition whose
	// context was marked with ColdStart: a channel's first election,
	// with no leader heard since it opened. It is counted in
	// Stats.ColdStarts, not in ElectionThrash.
	ColdStart bool
}

// ColdStart returns ctx marked for a channel's first election: a
// Transition or Fire under MissedHeartbeats with this context, made
// because no leader has been heard since the channel opened (the wait
// of a node that has just started), is counted in Stats.ColdStarts
// rather than ElectionThrash, and its Record says ColdStart. On any
// other signal the mark is ignored. replica.Node marks its channels'
// first elections so; a thrash alert then fires on lost leaders, not
// on every deploy.
func ColdStart(ctx context.Context) context.Context {
	return context.WithValue(ctx, coldStartKey{}, true)
}

type coldStartKey struct{}

func isColdStart(ctx context.Context) bool {
	v, _ := ctx.Value(coldStartKey{}).(bool)
	return v
}

// Observer is called once per committed and once per rejected
// transition. See Coordinator for the order and threading guarantees.
// Its context is the one the Transition (or Fire) call that made the
// record was given, so that its values (a trace, a request id) reach
// the observer; it may be done by the time the observer runs, and the
// record is delivered all the same.
type Observer func(context.Context, Record)

// Lease is a fencing token: the role and generation of a coordinator at
// one instant. Generation counts commits, so it never repeats: a leader
// that is deposed and elected again holds a new Lease, and the old one
// no longer holds.
type Lease struct {
	Role       Role
	Generation uint64
}

// MarshalText encodes the transition as String does, "From → To
// (Signal)", so that a map keyed by transitions (Stats.Transitions)
// encodes to JSON with readable keys. A role or signal outside the
// defined sets is an error.
func (t Transition) MarshalText() ([]byte, error) {
	if !t.From.Valid() || !t.To.Valid() || !t.Signal.Valid() {
		return nil, fmt.Errorf("rolefsm: cannot marshal %v: not a defined transition", t)
	}
	return []byte(t.String()), nil
}

// UnmarshalText decodes "From → To (Signal)" (names as ParseRole and
// ParseSignal read them). It does not check the triple against the
// matrix: a transition is a value, Apply judges it. On error the
// receiver is left unchanged.
func (t *Transition) UnmarshalText(text []byte) error {
	s := string(text)
	bad := func() error {
		return fmt.Errorf("rolefsm: %q is not a transition (want \"From → To (Signal)\")", s)
	}
	from, rest, ok := strings.Cut(s, " → ")
	if !ok {
		return bad()
	}
	to, sig, ok := strings.Cut(rest, " (")
	if !ok || !strings.HasSuffix(sig, ")") {
		return bad()
	}
	var v Transition
	if err := v.From.UnmarshalText([]byte(from)); err != nil {
		return err
	}
	if err := v.To.UnmarshalText([]byte(to)); err != nil {
		return err
	}
	if err := v.Signal.UnmarshalText([]byte(strings.TrimSuffix(sig, ")"))); err != nil {
		return err
	}
	*t = v
	return nil
}

// Lease is the fencing token a committed record grants: its role and
// the generation it reached. Take it in an observer on becoming Leader,
// rather than calling Coordinator.Lease, which may already reflect a
// later commit:
//
//	func(ctx context.Context, r rolefsm.Record) {
//		if r.Err == nil && r.To == rolefsm.Leader {
//			startAppending(r.Lease()) // and check c.Holds on every append
//		}
//	}
//
// A rejected record grants nothing: its Lease is the zero Lease, which
// holds on no coordinator that has committed.
func (r Record) Lease() Lease {
	if r.Err != nil {
		return Lease{}
	}
	return Lease{Role: r.To, Generation: r.Generation}
}

// String formats the record for a log or a test failure: the channel,
// the transition and its generation, or the rejection and its error.
//
//	orders: Replica → Leader (ElectionWon) committed, generation 3
//	orders: Replica → Leader (ElectionWon) rejected at generation 2: ...
func (r Record) String() string {
	var b strings.Builder
	if r.Name != "" {
		b.WriteString(r.Name)
		b.WriteString(": ")
	}
	b.WriteString(r.Transition.String())
	if r.Err != nil {
		fmt.Fprintf(&b, " rejected at generation %d: %v", r.Generation, r.Err)
	} else {
		fmt.Fprintf(&b, " committed, generation %d", r.Generation)
	}
	return b.String()
}

// recordJSON is a Record's JSON form: the audit log's attribute names.
type recordJSON struct {
	Name       string `json:"name,omitempty"`
	From       Role   `json:"from"`
	To         Role   `json:"to"`
	Signal     Signal `json:"signal"`
	Generation uint64 `json:"generation"`
	// Seq is the name generation had before v0.1.0; it is read, never
	// written.
	Seq   *uint64   `json:"seq,omitempty"`
	At    time.Time `json:"at"`
	Cold  bool      `json:"cold_start,omitempty"`
	Error string    `json:"error,omitempty"`
}

// MarshalJSON encodes the record with the audit log's names: name,
// from, to, signal, generation, at, and error (its message) for a
// rejection.
func (r Record) MarshalJSON() ([]byte, error) {
	j := recordJSON{Name: r.Name, From: r.From, To: r.To, Signal: r.Signal, Generation: r.Generation, At: r.At, Cold: r.ColdStart}
	if r.Err != nil {
		j.Error = r.Err.Error()
		if j.Error == "" {
			j.Error = "rejected"
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON encodes. A rejection's error
// comes back as the error Apply gives for the triple when the message
// is that error's (so errors.As finds an *InvalidPairError or
// *SignalMismatchError again), and as an error with the message
// otherwise.
func (r *Record) UnmarshalJSON(data []byte) error {
	var j recordJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	if j.Seq != nil && j.Generation == 0 {
		j.Generation = *j.Seq // written before the rename
	}
	v := Record{Name: j.Name, Transition: Transition{From: j.From, To: j.To, Signal: j.Signal}, Generation: j.Generation, At: j.At,
		ColdStart: j.Cold}
	if j.Error != "" {
		v.Err = errors.New(j.Error)
		if _, err := Apply(j.From, j.To, j.Signal); err != nil && err.Error() == j.Error {
			v.Err = err
		}
	}
	*r = v
	return nil
}
