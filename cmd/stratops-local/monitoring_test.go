package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// promAPI queries make run's Prometheus.
type promAPI struct{ url string }

func (p promAPI) get(t *testing.T, path string, params url.Values, into any) error {
	t.Helper()
	resp, err := http.Get(p.url + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("%s %v: %s", path, params, body.Error)
	}
	return json.Unmarshal(body.Data, into)
}

type promTarget struct {
	Labels    map[string]string `json:"labels"`
	ScrapeURL string            `json:"scrapeUrl"`
	Health    string            `json:"health"`
	LastError string            `json:"lastError"`
}

func (p promAPI) targets(t *testing.T) []promTarget {
	var d struct {
		ActiveTargets []promTarget `json:"activeTargets"`
	}
	if err := p.get(t, "/api/v1/targets", nil, &d); err != nil {
		t.Log(err)
	}
	return d.ActiveTargets
}

type promAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func (p promAPI) alerts(t *testing.T) []promAlert {
	var d struct {
		Alerts []promAlert `json:"alerts"`
	}
	if err := p.get(t, "/api/v1/alerts", nil, &d); err != nil {
		t.Log(err)
	}
	return d.Alerts
}

func (p promAPI) metricNames(t *testing.T) map[string]bool {
	var names []string
	if err := p.get(t, "/api/v1/label/__name__/values", nil, &names); err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// checkScrapes: Prometheus scrapes the manager (with the metrics-reader
// token) and every event logger, whose series carry namespace and
// strategy; the manager refuses a scrape without a token.
func checkScrapes(t *testing.T, st State, loggers int) {
	t.Helper()
	p := promAPI{st.Prometheus}
	deadline := time.Now().Add(60 * time.Second)
	for {
		up := map[string]int{}
		var bad []string
		for _, tg := range p.targets(t) {
			if tg.Health == "up" {
				up[tg.Labels["job"]]++
				if tg.Labels["job"] == "stratops-eventlogger" && (tg.Labels["namespace"] != "default" || tg.Labels["strategy"] == "") {
					t.Fatalf("a logger target lacks its namespace and strategy labels: %v", tg.Labels)
				}
			} else {
				bad = append(bad, fmt.Sprintf("%s %s: %s %s", tg.Labels["job"], tg.ScrapeURL, tg.Health, tg.LastError))
			}
		}
		if up["stratops-manager"] == 1 && up["stratops-eventlogger"] == loggers {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus does not scrape the manager and %d loggers: up %v, not up %v", loggers, up, bad)
		}
		time.Sleep(time.Second)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Get("https://" + st.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the manager's metrics without a token: %d, want 401", resp.StatusCode)
	}
}

// waitForAlert waits until Prometheus fires an alert for a Strategy.
func waitForAlert(t *testing.T, st State, name, strategy string, d time.Duration) {
	t.Helper()
	p := promAPI{st.Prometheus}
	deadline := time.Now().Add(d)
	for {
		var seen []string
		for _, a := range p.alerts(t) {
			if a.Labels["alertname"] == name && a.Labels["strategy"] == strategy && a.State == "firing" {
				return
			}
			seen = append(seen, a.Labels["alertname"]+"/"+a.Labels["strategy"]+" "+a.State)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s alert firing for %s after %s; alerts: %v", name, strategy, d, seen)
		}
		time.Sleep(time.Second)
	}
}

// Identifiers of PromQL that are not metric names.
var promqlWords = map[string]bool{"by": true, "without": true, "and": true, "or": true, "unless": true, "bool": true,
	"offset": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}

var (
	promqlStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promqlMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	promqlRanges   = regexp.MustCompile(`\[[^\]]*\]`)
	promqlNumbers  = regexp.MustCompile(`\b[0-9][0-9a-zA-Z_.]*`)
	promqlGroups   = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promqlIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
)

// metricsOf lists the metric names a PromQL expression reads: its
// identifiers but functions, keywords, label names and values, and
// grouping labels.
func metricsOf(expr string) []string {
	e := promqlStrings.ReplaceAllString(expr, `""`)
	e = promqlMatchers.ReplaceAllString(e, " ")
	e = promqlRanges.ReplaceAllString(e, " ")
	e = promqlGroups.ReplaceAllString(e, " ")
	e = promqlNumbers.ReplaceAllString(e, " ")
	var out []string
	for _, m := range promqlIdent.FindAllString(e, -1) {
		if strings.HasSuffix(m, "(") || promqlWords[strings.ToLower(m)] {
			continue
		}
		out = append(out, m)
	}
	return out
}

func TestMetricsOf(t *testing.T) {
	for expr, want := range map[string]string{
		`max by (namespace, strategy) (stratops_strategy_phase{phase="Halted"}) == 1`:                           "stratops_strategy_phase",
		`histogram_quantile(0.99, sum by (le, probe) (rate(stratops_redis_probe_duration_seconds_bucket[5m])))`: "stratops_redis_probe_duration_seconds_bucket",
		`a_total / on (pod) group_left (x) (b_bytes > 0) and time() - c{d="e{f}"}`:                              "a_total b_bytes c",
		`sum(x{namespace="$namespace", strategy=~"$strategy"}) without (pod) unless y offset 5m`:                "x y",
	} {
		if got := strings.Join(metricsOf(expr), " "); got != want {
			t.Errorf("metricsOf(%s) = %q, want %q", expr, got, want)
		}
	}
}

// known reports whether Prometheus has scraped a metric of this name (a
// histogram's name stands for its _bucket, _sum and _count).
func known(names map[string]bool, n string) bool {
	return names[n] || names[n+"_bucket"] || names[n+"_count"]
}

// checkMetricNames: every metric the Grafana dashboard, the alert rules
// and the README name is one the binaries really export, as scraped by
// make run's Prometheus after the run's Redis outage; every dashboard
// query is valid PromQL to that Prometheus.
func checkMetricNames(t *testing.T, st State, root string) {
	t.Helper()
	p := promAPI{st.Prometheus}
	names := p.metricNames(t)
	unknown := map[string][]string{}
	note := func(where, name string) {
		if !known(names, name) {
			unknown[name] = append(unknown[name], where)
		}
	}

	b, err := os.ReadFile(filepath.Join(root, "config", "grafana", "stratops.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("config/grafana/stratops.json: %v", err)
	}
	queries := 0
	for _, panel := range dash.Panels {
		for _, tg := range panel.Targets {
			queries++
			for _, n := range metricsOf(tg.Expr) {
				note("dashboard panel "+panel.Title, n)
			}
			q := strings.NewReplacer("$namespace", "default", "$strategy", "eth-basis").Replace(tg.Expr)
			var res json.RawMessage
			if err := p.get(t, "/api/v1/query", url.Values{"query": {q}}, &res); err != nil {
				t.Errorf("dashboard panel %s: %v", panel.Title, err)
			}
		}
	}
	for _, v := range dash.Templating.List {
		if m := regexp.MustCompile(`label_values\((\w+)`).FindStringSubmatch(v.Definition); m != nil {
			note("dashboard variable "+v.Name, m[1])
		}
	}
	if queries < 20 {
		t.Fatalf("the dashboard has only %d queries", queries)
	}

	b, err = os.ReadFile(filepath.Join(root, "config", "prometheus", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, n := range metricsOf(r.Expr) {
				note("alert "+r.Alert, n)
			}
		}
	}

	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	for _, f := range append([]string{filepath.Join(root, "README.md"), filepath.Join(root, "DEVELOPMENT.md")}, docs...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range regexp.MustCompile(`\b(?:stratops|controller_runtime)_[a-z0-9_]*[a-z0-9]\b`).FindAllString(string(b), -1) {
			if strings.HasSuffix(n, "_local") || n == "stratops_messaging" { // bin/stratops-local and the Python SDK's package are no metrics
				continue
			}
			note(filepath.Base(f), n)
		}
	}

	if len(unknown) > 0 {
		var lines []string
		for n, where := range unknown {
			sort.Strings(where)
			lines = append(lines, fmt.Sprintf("%s (in %s)", n, strings.Join(compact(where), ", ")))
		}
		sort.Strings(lines)
		t.Errorf("metrics no binary exports:\n%s", strings.Join(lines, "\n"))
	}
}

func compact(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
