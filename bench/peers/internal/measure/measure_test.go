package measure

import (
	"os"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := Median(tc.xs); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
	xs := []float64{2, 1}
	Median(xs)
	if xs[0] != 2 {
		t.Error("Median sorted its argument")
	}
}

func TestCPU(t *testing.T) {
	if _, err := CPU([]int{os.Getpid()}); err != nil {
		t.Fatal(err)
	}
	if _, err := CPU([]int{os.Getpid(), 1 << 30}); err == nil {
		t.Error("a process that does not exist must be an error")
	}
}
