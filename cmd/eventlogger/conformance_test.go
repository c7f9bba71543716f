package main

import (
	"bytes"

	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// conformance runs `eventlogger conformance` (the binary this package's
// TestMain built) on a component, and returns its exit status and report.
func conformanceRun(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"conformance", "--duration=4s"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code == 2 {
		return code, stdout.String() + stderr.String()
	}
	return code, stdout.String()
}

func needDebianPython(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("/usr/bin/python3", "-c", "import redis").CombinedOutput(); err != nil {
		t.Fatalf("/usr/bin/python3 with redis-py is needed (make test installs python3-redis): %v\n%s", err, out)
	}
}

// TestConformance_ComponentsThatFollowTheStandardPass: the Go sample
// engine, the standard's five components on the Python package, and the
// same components written with raw redis-py all pass, exit status 0.
func TestConformance_ComponentsThatFollowTheStandardPass(t *testing.T) {
	needDebianPython(t)
	engine := filepath.Join(t.TempDir(), "sampleengine")
	if out, err := exec.Command("go", "build", "-o", engine, "../sampleengine").CombinedOutput(); err != nil {
		t.Fatalf("building the sample engine: %v\n%s", err, out)
	}
	sdk, _ := filepath.Abs("../../sdk/python")
	for _, tc := range []struct {
		name string
		env  []string
		cmd  []string
	}{
		{"the Go sample engine", nil, []string{engine, "--interval=100ms", "--malformed-every=0"}},
		{"the Python package's components", []string{"PYTHONPATH=" + sdk, "PYTHONDONTWRITEBYTECODE=1"},
			[]string{"/usr/bin/python3", "../../test/interop/sdk_components.py", "20"}},
		{"raw redis-py components", nil,
			[]string{"/usr/bin/python3", "../../test/interop/standard_components.py", filepath.Join(t.TempDir(), "sent.jsonl"), "20"}},
	} {
		code, report := conformanceRun(t, tc.env, append([]string{"--"}, tc.cmd...)...)
		t.Logf("%s:\n%s", tc.name, report)
		if code != 0 || !strings.Contains(report, "PASS: no fault") {
			t.Errorf("%s: exit status %d; want 0 and PASS", tc.name, code)
		}
		for _, ch := range []string{"position:updated", "exposure:calculated", "risk:calculated", "pnl:calculated", "strategy:instructions"} {
			if !strings.Contains(report, "\n"+ch+" ") {
				t.Errorf("%s: the report has no row for %s", tc.name, ch)
			}
		}
	}
}

// TestConformance_ABrokenComponentFailsNamingEachFault: a component with
// a wrong TTL, a missing timestamp, a message that is not JSON and a
// channel outside the catalog fails (exit status 1); the report and the
// JUnit XML name each fault; its naive but valid timestamps are no fault.
func TestConformance_ABrokenComponentFailsNamingEachFault(t *testing.T) {
	needDebianPython(t)
	junit := filepath.Join(t.TempDir(), "conformance.xml")
	code, report := conformanceRun(t, nil, "--junit="+junit, "--", "/usr/bin/python3", "testdata/broken_component.py")
	t.Logf("the broken component:\n%s", report)
	if code != 1 {
		t.Fatalf("exit status %d; want 1", code)
	}
	for _, want := range []string{
		"FAIL: 4 faults",
		"left; the policy is 1h0m0s",
		"channel exposure:calculated: 5 nonconforming (missing_timestamp)",
		"channel risk:calculated: 5 invalid (invalid_json)",
		"channel orders:placed: 5 messages on a channel that is not in the catalog",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if !strings.Contains(report, "key position:snapshot: TTL ") {
		t.Error("the report does not name position:snapshot's TTL")
	}
	for _, line := range strings.Split(report, "\n") {
		if strings.HasPrefix(line, "position:updated ") && (!strings.HasSuffix(line, "ok") || !strings.Contains(line, " 5 ")) {
			t.Errorf("naive timestamps are valid: %q", line)
		}
	}
	raw, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Suites []struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Cases    []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(raw, &suites); err != nil {
		t.Fatalf("the JUnit report: %v\n%s", err, raw)
	}
	failed := map[string]string{}
	for _, c := range suites.Suites[0].Cases {
		if c.Failure != nil {
			failed[c.Name] = c.Failure.Message
		}
	}
	if suites.Suites[0].Failures != 4 || len(failed) != 4 {
		t.Errorf("JUnit: %d failures %v; want position:snapshot, exposure:calculated, risk:calculated, orders:placed", suites.Suites[0].Failures, failed)
	}
	for _, name := range []string{"position:snapshot", "exposure:calculated", "risk:calculated", "orders:placed"} {
		if failed[name] == "" {
			t.Errorf("JUnit: no failure for %s", name)
		}
	}
}

// TestConformance_ANamedComponentMustDoItsPart: with --component, a
// catalog channel the component publishes but never did, and a key it
// writes but never did, are faults.
func TestConformance_ANamedComponentMustDoItsPart(t *testing.T) {
	needDebianPython(t)
	code, report := conformanceRun(t, nil, "--component=pnl_calculator", "--", "/usr/bin/python3", "testdata/broken_component.py")
	if code != 1 {
		t.Fatalf("exit status %d; want 1:\n%s", code, report)
	}
	for _, want := range []string{
		"channel pnl:calculated: never published: the catalog names pnl_calculator its publisher",
		"channel risk:calculated: no subscriber seen: the catalog names pnl_calculator a subscriber",
		"key pnl:current: never written: the catalog names pnl_calculator its writer",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q:\n%s", want, report)
		}
	}
}
