// Package architecture holds tests of the project's shape: what each
// product binary links. The direct import rules between packages are
// golangci-lint's depguard rules (.golangci.yml); these tests see the
// whole linked graph, which depguard does not.
package architecture

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/stratops/stratops/"

// deps lists what a package links, itself included.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", module+pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// TestProductBinariesLinkNoTestHelper: no binary the image ships, nor make
// run's, links the testing package or a test helper.
func TestProductBinariesLinkNoTestHelper(t *testing.T) {
	for _, bin := range []string{"cmd/manager", "cmd/eventlogger", "cmd/sampleengine", "cmd/stratops-local", "cmd/kubectl-stratops"} {
		for _, d := range deps(t, bin) {
			if d == "testing" || strings.HasPrefix(d, module+"internal/redistest") {
				t.Errorf("%s links %s", bin, d)
			}
		}
	}
}

// TestEachBinaryLinksOnlyItsOwnSide: the manager links the logger's
// settings codec but not the logger; the logger links no controller
// runtime and no API types; the sample engine, written as a user would,
// links only the public package of ours (and its build metadata).
func TestEachBinaryLinksOnlyItsOwnSide(t *testing.T) {
	for _, d := range deps(t, "cmd/manager") {
		if strings.HasPrefix(d, module+"internal/eventlogger") && d != module+"internal/eventlogger/settings" {
			t.Errorf("the manager links the event logger's %s", d)
		}
	}
	for _, d := range deps(t, "cmd/eventlogger") {
		if strings.HasPrefix(d, "sigs.k8s.io/controller-runtime") || strings.HasPrefix(d, module+"api/") || strings.HasPrefix(d, "k8s.io/") {
			t.Errorf("the event logger links %s", d)
		}
	}
	// Besides its own code and the public package, the sample engine links
	// only internal/version, for its --version (build metadata, not a way
	// around the public package).
	for _, d := range deps(t, "cmd/sampleengine") {
		if strings.HasPrefix(d, module) && !strings.HasPrefix(d, module+"pkg/") && !strings.HasPrefix(d, module+"cmd/") &&
			!strings.HasPrefix(d, module+"internal/sampleengine") && d != module+"internal/version" {
			t.Errorf("the sample engine links %s", d)
		}
	}
}

// TestEveryBinaryAnswersVersion: each binary, built as make build builds
// it, prints the release from VERSION, a commit and the Go version.
func TestEveryBinaryAnswersVersion(t *testing.T) {
	raw, err := os.ReadFile("../../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(raw))
	dir := t.TempDir()
	for _, bin := range []string{"manager", "eventlogger", "sampleengine", "stratops-local", "kubectl-stratops"} {
		out := filepath.Join(dir, bin)
		build := exec.Command("go", "build", "-ldflags", "-X "+module+"internal/version.Version="+want, "-o", out, module+"cmd/"+bin)
		if b, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", bin, err, b)
		}
		got, err := exec.Command(out, "--version").Output()
		if err != nil {
			t.Fatalf("%s --version: %v", bin, err)
		}
		if s := string(got); !strings.HasPrefix(s, bin+" "+want+" (commit ") || !strings.Contains(s, "go1.") {
			t.Fatalf("%s --version printed %q", bin, s)
		}
	}
}
