package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rolefsm/rolefsm/rolefsmprom"
)

// monitoringDir holds the alerting rules and the dashboard.
const monitoringDir = "../../monitoring"

// exported returns the metric names a rolefsm node exports: those of
// the collectors node() registers, read from their descriptors.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	cs := []prometheus.Collector{rolefsmprom.NewSet(), rolefsmprom.NewDriverErrors(nil), rolefsmprom.NewTransportCollector(nil)}
	cs = append(cs, etcdCollector(nil)...)
	for _, c := range cs {
		ch := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := fq.FindStringSubmatch(d.String())
			require.NotNil(t, m, d.String())
			names[m[1]] = true
		}
	}
	return names
}

// TestMonitoringUsesExportedMetrics: every rolefsm metric the alerts and
// the dashboard name is one a node exports (a rename fails here, not in
// a user's silent alert).
func TestMonitoringUsesExportedMetrics(t *testing.T) {
	names := exported(t)
	require.True(t, names["rolefsm_role"] && names["rolefsm_etcd_session_valid"] && names["rolefsm_transport_peer_session"], "%v", names)
	metric := regexp.MustCompile(`rolefsm_[a-z_]+`)
	for _, f := range []string{"alerts.yml", "alerts_test.yml", "dashboard.json"} {
		data, err := os.ReadFile(filepath.Join(monitoringDir, f))
		require.NoError(t, err)
		used := 0
		for _, m := range metric.FindAllString(string(data), -1) {
			// Annotations name metrics in prose; the dashboard's uid
			// and tag are "rolefsm".
			assert.True(t, names[m], "%s names %s, which no node exports", f, m)
			used++
		}
		assert.Positive(t, used, f)
	}
}

// TestDashboardQueriesParse gives every query of the dashboard to
// promtool as a recording rule, so that a query Prometheus cannot parse
// fails here. Without promtool on the PATH it is skipped, unless
// ROLEFSM_REQUIRE_PROMTOOL is set (CI sets it).
func TestDashboardQueriesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("ROLEFSM_REQUIRE_PROMTOOL") != "" {
			t.Fatal("promtool is not on the PATH (apt-get install prometheus)")
		}
		t.Skip("no promtool")
	}
	data, err := os.ReadFile(filepath.Join(monitoringDir, "dashboard.json"))
	require.NoError(t, err)
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(data, &d))
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range d.Panels {
		require.NotEmpty(t, p.Targets, p.Title)
		for _, tg := range p.Targets {
			expr := strings.ReplaceAll(tg.Expr, "$__rate_interval", "5m")
			q, err := json.Marshal(expr) // a JSON string is a YAML string
			require.NoError(t, err)
			fmt.Fprintf(&rules, "      - record: dashboard:query%d\n        expr: %s\n", n, q)
			n++
		}
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	require.NoError(t, os.WriteFile(path, []byte(rules.String()), 0o600))
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), fmt.Sprintf("SUCCESS: %d rules found", n))
}
