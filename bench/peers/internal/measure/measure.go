// Package measure holds what the side-by-side drivers of bench/peers
// share: the CPU of a set of processes, and medians.
package measure

import (
	"slices"
	"time"

	"github.com/rolefsm/rolefsm/rolefsmtest/nodeproc"
)

// CPU returns the user and system CPU the processes pids have used, in
// all.
func CPU(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, pid := range pids {
		d, err := nodeproc.CPUTime(pid)
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

// Median returns the median of xs (the mean of the middle two for an
// even count), or 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
