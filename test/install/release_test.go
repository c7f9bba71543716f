package install

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// TestRelease_DistIsWhatAPlatformTeamInstalls checks what `make release`
// wrote (DIST, which `make test` sets after running it): the checksums
// match; the OCI archive holds one image index for linux/amd64 and
// linux/arm64, each image's config naming its architecture, running as
// 65532, labelled with the version, its binaries built for that
// architecture (their ELF headers), the amd64 ones printing the version;
// stratops.yaml passes a strict server-side dry run against the real API
// server and names the version's image; the packaged chart lints and
// renders with that image; each binary has a CycloneDX SBOM.
func TestRelease_DistIsWhatAPlatformTeamInstalls(t *testing.T) {
	dist := tool(t, "DIST")
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(string(raw))
	image := "stratops:" + version

	t.Run("checksums", func(t *testing.T) {
		f, err := os.Open(filepath.Join(dist, "SHA256SUMS"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		listed := 0
		for sc := bufio.NewScanner(f); sc.Scan(); listed++ {
			sum, name, _ := strings.Cut(sc.Text(), "  ")
			b, err := os.ReadFile(filepath.Join(dist, name))
			if err != nil {
				t.Fatal(err)
			}
			if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != sum {
				t.Errorf("%s: SHA256SUMS says %s, the file is %x", name, sum, got)
			}
		}
		entries, _ := os.ReadDir(dist)
		if listed != len(entries)-1 {
			t.Errorf("SHA256SUMS lists %d files of the %d in %s", listed, len(entries)-1, dist)
		}
	})

	t.Run("image", func(t *testing.T) {
		idx := releaseIndex(t, filepath.Join(dist, "stratops-"+version+".oci.tar"))
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		archs := map[string]bool{}
		for _, d := range im.Manifests {
			arch := d.Platform.Architecture
			archs[arch] = true
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Architecture != arch || cfg.OS != "linux" || cfg.Config.User != "65532:65532" || cfg.Config.Entrypoint[0] != "/manager" {
				t.Errorf("%s: config says %s/%s, user %q, entrypoint %v", arch, cfg.OS, cfg.Architecture, cfg.Config.User, cfg.Config.Entrypoint)
			}
			for _, l := range []string{"org.opencontainers.image.version", "org.opencontainers.image.revision", "org.opencontainers.image.licenses"} {
				if cfg.Config.Labels[l] == "" {
					t.Errorf("%s: no label %s", arch, l)
				}
			}
			if cfg.Config.Labels["org.opencontainers.image.version"] != version {
				t.Errorf("%s: version label %q, want %q", arch, cfg.Config.Labels["org.opencontainers.image.version"], version)
			}
			files := layerFiles(t, img)
			want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
			for _, b := range []string{"manager", "eventlogger", "sampleengine"} {
				f, err := elf.NewFile(bytes.NewReader(files[b]))
				if err != nil {
					t.Fatalf("%s /%s: %v", arch, b, err)
				}
				if f.Machine != want {
					t.Errorf("%s /%s is built for %v", arch, b, f.Machine)
				}
				if arch == "amd64" {
					p := filepath.Join(t.TempDir(), b)
					if err := os.WriteFile(p, files[b], 0o755); err != nil {
						t.Fatal(err)
					}
					out, err := exec.Command(p, "--version").CombinedOutput()
					if err != nil || !strings.Contains(string(out), version) {
						t.Errorf("/%s --version: %v: %s", b, err, out)
					}
				}
			}
			if !strings.Contains(string(files["etc/passwd"]), ":65532:65532:") || len(files["etc/ssl/certs/ca-certificates.crt"]) == 0 {
				t.Errorf("%s: no nonroot user or no CA certificates", arch)
			}
			if _, ok := files["tmp/"]; !ok {
				t.Errorf("%s: no /tmp", arch)
			}
		}
		if !archs["amd64"] || !archs["arm64"] || len(archs) != 2 {
			t.Errorf("the index lists %v; want amd64 and arm64", archs)
		}
	})

	t.Run("stratops.yaml", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(dist, "stratops.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		objs := decodeObjects(t, string(b))
		api := startAPIServer(t)
		kinds := map[string]bool{}
		for _, o := range objs {
			kinds[o.GetKind()] = true
			if o.GetKind() == "Namespace" {
				api.ensureNamespace(t, o.GetName())
			}
		}
		for _, o := range objs {
			if err := api.dryRunApply(o); err != nil {
				t.Errorf("%s: %v", key(o), err)
			}
		}
		for _, k := range []string{"CustomResourceDefinition", "Namespace", "Deployment", "ClusterRole", "ValidatingAdmissionPolicy"} {
			if !kinds[k] {
				t.Errorf("stratops.yaml has no %s", k)
			}
		}
		d := find(objs, "Deployment", "")
		js, _ := json.Marshal(d.Object)
		if strings.Count(string(js), `"`+image+`"`) != 2 {
			t.Errorf("the manager's Deployment does not name %s as its image and the loggers' default: %s", image, js)
		}
	})

	t.Run("chart", func(t *testing.T) {
		chart := filepath.Join(dist, "stratops-"+version+".tgz")
		if out, err := run(t, tool(t, "HELM"), "lint", chart); err != nil {
			t.Fatalf("helm lint: %v\n%s", err, out)
		}
		meta, err := run(t, tool(t, "HELM"), "show", "chart", chart)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"version: " + version, "appVersion: " + version, "image: " + image, "artifacthub.io/license: Apache-2.0", "artifacthub.io/crds:", "home: https://", "sources:", "maintainers:"} {
			if !strings.Contains(meta, want) {
				t.Errorf("the packaged Chart.yaml lacks %q:\n%s", want, meta)
			}
		}
		out, err := run(t, tool(t, "HELM"), "template", "stratops", chart, "--namespace", "ops")
		if err != nil {
			t.Fatal(err)
		}
		var d, check *unstructured.Unstructured
		for _, o := range decodeObjects(t, out) {
			switch {
			case o.GetKind() == "Deployment":
				d = o
			case o.GetKind() == "Pod" && o.GetAnnotations()["helm.sh/hook"] == "test":
				check = o
			}
		}
		js, _ := json.Marshal(d.Object)
		if !strings.Contains(string(js), `"image":"`+image+`"`) {
			t.Errorf("the packaged chart's Deployment does not run %s: %s", image, js)
		}
		if check == nil {
			t.Fatal("the packaged chart has no helm test Pod")
		}
		js, _ = json.Marshal(check.Object)
		if !strings.Contains(string(js), `"image":"`+image+`"`) || !strings.Contains(string(js), `"command":["/manager","check"]`) {
			t.Errorf("the chart's helm test Pod does not run %s's `/manager check`: %s", image, js)
		}
	})

	t.Run("kubectl plugin and krew manifest", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(dist, "stratops.krew.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			APIVersion string `json:"apiVersion"`
			Kind       string
			Metadata   struct{ Name string }
			Spec       struct {
				Version          string
				Homepage         string
				ShortDescription string `json:"shortDescription"`
				Description      string
				Platforms        []struct {
					Selector struct{ MatchLabels map[string]string } `json:"selector"`
					URI      string                                  `json:"uri"`
					SHA256   string                                  `json:"sha256"`
					Bin      string                                  `json:"bin"`
				}
			}
		}
		if err := yaml.UnmarshalStrict(raw, &m); err != nil {
			t.Fatalf("stratops.krew.yaml: %v", err)
		}
		if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Spec.ShortDescription == "" || m.Kind != "Plugin" || m.Metadata.Name != "stratops" || m.Spec.Version != "v"+version || len(m.Spec.Platforms) != 2 {
			t.Fatalf("stratops.krew.yaml: kind %q name %q version %q, %d platforms", m.Kind, m.Metadata.Name, m.Spec.Version, len(m.Spec.Platforms))
		}
		want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
		for _, p := range m.Spec.Platforms {
			arch := p.Selector.MatchLabels["arch"]
			name := "kubectl-stratops-" + version + "-linux-" + arch + ".tar.gz"
			if p.Selector.MatchLabels["os"] != "linux" || !strings.HasSuffix(p.URI, "/"+name) || p.Bin != "kubectl-stratops" {
				t.Errorf("platform %v: uri %s, bin %s", p.Selector.MatchLabels, p.URI, p.Bin)
			}
			archive, err := os.ReadFile(filepath.Join(dist, name))
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(archive); hex.EncodeToString(sum[:]) != p.SHA256 {
				t.Errorf("%s: the manifest's sha256 %s is not the archive's", name, p.SHA256)
			}
			gz, err := gzip.NewReader(bytes.NewReader(archive))
			if err != nil {
				t.Fatal(err)
			}
			files := tarFiles(t, gz)
			f, err := elf.NewFile(bytes.NewReader(files["kubectl-stratops"]))
			if err != nil || f.Machine != want[arch] || len(files["LICENSE"]) == 0 {
				t.Errorf("%s: kubectl-stratops built for %v (%v), LICENSE %d bytes", name, f, err, len(files["LICENSE"]))
				continue
			}
			if arch == "amd64" {
				bin := filepath.Join(t.TempDir(), "kubectl-stratops")
				if err := os.WriteFile(bin, files["kubectl-stratops"], 0o755); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(bin, "--version").CombinedOutput()
				if err != nil || !strings.Contains(string(out), version) {
					t.Errorf("kubectl-stratops --version: %v: %s", err, out)
				}
			}
		}
	})

	t.Run("SBOMs", func(t *testing.T) {
		for _, b := range []string{"manager", "eventlogger", "sampleengine"} {
			raw, err := os.ReadFile(filepath.Join(dist, b+".cdx.json"))
			if err != nil {
				t.Fatal(err)
			}
			var bom struct {
				BOMFormat  string `json:"bomFormat"`
				Components []struct {
					Name string `json:"name"`
				} `json:"components"`
			}
			if err := json.Unmarshal(raw, &bom); err != nil {
				t.Fatalf("%s.cdx.json: %v", b, err)
			}
			found := false
			for _, c := range bom.Components {
				found = found || strings.Contains(c.Name, "go-redis")
			}
			if bom.BOMFormat != "CycloneDX" || !found {
				t.Errorf("%s.cdx.json: format %q, %d components, go-redis among them: %v", b, bom.BOMFormat, len(bom.Components), found)
			}
		}
	})
}

// releaseIndex opens the OCI archive and returns the image index it
// holds (the layout's one entry).
func releaseIndex(t *testing.T, archive string) v1.ImageIndex {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, b := range tarFiles(t, f) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			_ = os.MkdirAll(p, 0o755)
			continue
		}
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 || tm.Manifests[0].MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("the layout's index.json holds %d entries (%v); want one image index", len(tm.Manifests), tm.Manifests)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// layerFiles reads every regular file (and directory, with a trailing
// slash) of an image's layers.
func layerFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(files, tarFiles(t, rc))
		_ = rc.Close()
	}
	return files
}

// tarFiles reads a tar: each entry's content by name (a directory's name
// ends in a slash, its content empty).
func tarFiles(t *testing.T, r io.Reader) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		name := h.Name
		if h.Typeflag == tar.TypeDir && !strings.HasSuffix(name, "/") {
			name += "/"
		}
		files[name] = b
	}
}
