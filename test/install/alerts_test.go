package install

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// githubAnchor is the anchor GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	a := strings.ToLower(strings.TrimSpace(heading))
	a = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(a, "")
	return strings.ReplaceAll(a, " ", "-")
}

// TestAlerts_EachHasARunbookAndAREADMERow: every alert of
// config/prometheus/rules.yaml has a severity, a summary, a runbook_url
// whose anchor is a heading of docs/runbooks.md that names the alert, and
// a row in the alert table of docs/operating.md linking that runbook.
func TestAlerts_EachHasARunbookAndADocsRow(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "config", "prometheus", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `json:"alert"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	runbooks, err := os.ReadFile(filepath.Join(root, "docs", "runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{} // anchor → section text
	var anchor string
	for _, line := range strings.Split(string(runbooks), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			anchor = githubAnchor(h)
			sections[anchor] = ""
		}
		if anchor != "" {
			sections[anchor] += line + "\n"
		}
	}
	readme, err := os.ReadFile(filepath.Join(root, "docs", "operating.md"))
	if err != nil {
		t.Fatal(err)
	}
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: no summary or description", r.Alert)
			}
			url := r.Annotations["runbook_url"]
			const base = "https://github.com/stratops/stratops/blob/main/docs/runbooks.md#"
			a, ok := strings.CutPrefix(url, base)
			if !ok {
				t.Errorf("%s: runbook_url %q is not a section of docs/runbooks.md", r.Alert, url)
				continue
			}
			section, ok := sections[a]
			if !ok {
				t.Errorf("%s: docs/runbooks.md has no heading #%s", r.Alert, a)
			} else if !strings.Contains(section, r.Alert) {
				t.Errorf("%s: its runbook section #%s does not name it", r.Alert, a)
			}
			row := regexp.MustCompile("(?m)^\\| `" + r.Alert + "` \\|.*\\(runbooks\\.md#" + regexp.QuoteMeta(a) + "\\)")
			if !row.Match(readme) {
				t.Errorf("%s: no alert-table row in docs/operating.md linking runbooks.md#%s", r.Alert, a)
			}
		}
	}
	for _, want := range []string{"StrategyHalted", "StrategyGatedTooLong", "StrategyRedisLost", "StrategyStalled", "ChannelUnhealthy",
		"KeyTTLPolicyBroken", "EventLoggerDropping", "EventLoggerGap", "EventLoggerQueueGrowing", "ManagerReconcileErrors"} {
		if !strings.Contains(string(b), "alert: "+want+"\n") {
			t.Errorf("no alert %s", want)
		}
	}
	if alerts < 10 {
		t.Fatalf("only %d alerts", alerts)
	}
}
