package rolefsm

// The options of NewCoordinator.

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Option configures a Coordinator.
type Option func(*config) error

type config struct {
	initial   Role
	name      string
	logger    *slog.Logger
	observers []Observer
	clock     func() time.Time
}

// WithInitialRole sets the role the coordinator starts in (Idle by
// default). A role outside the defined set makes NewCoordinator fail.
func WithInitialRole(r Role) Option {
	return func(c *config) error {
		if !r.Valid() {
			return fmt.Errorf("rolefsm: WithInitialRole: %v is not a defined role", r)
		}
		c.initial = r
		return nil
	}
}

// WithName names the channel the coordinator guards. The name is
// carried into audit logs and Stats.
func WithName(name string) Option {
	return func(c *config) error {
		c.name = name
		return nil
	}
}

// WithLogger turns on the audit log: one Info record per committed
// transition and one Warn record per rejected one, with name, from,
// to, signal and generation attributes (and error on a rejection). Without
// it, or with a nil logger, nothing is logged.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		c.logger = l
		return nil
	}
}

// WithClock sets the clock that stamps records (Record.At; default
// time.Now): a test on a fake clock passes its own, so that the
// records' times and the replica runtime's read the same clock.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("rolefsm: WithClock: nil clock")
		}
		c.clock = now
		return nil
	}
}

// WithObserver adds an observer. It may be given several times;
// observers are called in the order they were given.
func WithObserver(o Observer) Option {
	return func(c *config) error {
		if o == nil {
			return errors.New("rolefsm: WithObserver: nil observer")
		}
		c.observers = append(c.observers, o)
		return nil
	}
}
