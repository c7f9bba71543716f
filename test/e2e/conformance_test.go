//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestConformance_ChecksAnImageWithPodman: `eventlogger conformance
// --image` runs the component as `podman run --rm --network host IMAGE`:
// the sample engine's image (made here from the binary), publishing a
// malformed message every tenth update, has every channel and key checked
// and fails naming the invalid messages.
func TestConformance_ChecksAnImageWithPodman(t *testing.T) {
	timed(t)
	dir := t.TempDir()
	for _, b := range []string{"eventlogger", "sampleengine"} {
		build := exec.Command("go", "build", "-o", filepath.Join(dir, "rootfs", b), "./cmd/"+b)
		build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", b, err, out)
		}
	}
	// podman on this kind of host: cgroupfs, runc, file events, and
	// limits runc may set.
	conf := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n"+
		"[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "CONTAINERS_CONF="+conf)
	const img = "localhost/stratops-e2e/conformance-sample:1"
	imp := exec.Command("sh", "-c", `tar -C "$1" -c sampleengine | podman import --change 'ENTRYPOINT ["/sampleengine"]' - "$2"`, "sh",
		filepath.Join(dir, "rootfs"), img)
	imp.Env = env
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("podman import: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("podman", "rmi", "-f", img).Run() })
	check := exec.Command(filepath.Join(dir, "rootfs", "eventlogger"), "conformance", "--duration=5s", "--image", img, "--",
		"--interval=100ms", "--malformed-every=10")
	check.Env = env
	out, err := check.Output()
	t.Logf("the report:\n%s", out)
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit status: %v; want 1 (the malformed messages)\n%s", err, ee)
	}
	report := string(out)
	for _, want := range []string{"invalid (invalid_json)", "\nposition:snapshot ", "\nstrategy:instructions "} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
}
