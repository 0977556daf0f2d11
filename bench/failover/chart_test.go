package main

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/chart.svg")

// TestChartGolden pins the chart of a fixed table (go test
// ./bench/failover -update after a deliberate change).
func TestChartGolden(t *testing.T) {
	msd := func(ns ...int) []time.Duration {
		var ds []time.Duration
		for _, n := range ns {
			ds = append(ds, time.Duration(n)*time.Millisecond)
		}
		return ds
	}
	var b bytes.Buffer
	err := writeChart(&b, "rolefsm failover: 3 nodes, 100 channels, -miss 3", []chartRow{
		{"100ms SIGKILL", msd(240, 255, 270, 270, 318)},
		{"100ms SIGTERM", msd(21, 25, 25, 31)},
		{"500ms SIGKILL", msd(1210, 1316, 1573)},
		{"500ms SIGTERM", msd(89, 103)},
		{"no failovers", nil},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := b.String()
	if *update {
		if err := os.WriteFile("testdata/chart.svg", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/chart.svg")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("the chart differs from testdata/chart.svg (go test ./bench/failover -update to accept)")
	}
	// Every failover is a dot; the axis spans 10ms to 10s.
	if n := strings.Count(got, "<circle"); n != 14 {
		t.Errorf("%d dots, want 14", n)
	}
	for _, label := range []string{">10ms<", ">1s<", ">10s<", "<title>median 270ms</title>", "<title>slowest 1.573s</title>"} {
		if !strings.Contains(got, label) {
			t.Errorf("no %s", label)
		}
	}
}
