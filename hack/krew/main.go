// Command krew writes the krew plugin manifest of kubectl stratops for a
// release: one platform per archive that make release wrote
// (kubectl-stratops-<version>-linux-<arch>.tar.gz), each with its sha256
// and its download URI under -url (RELEASE_URL: no host is named here).
//
//	go run ./hack/krew -version 0.2.0 -url https://example.invalid/releases/0.2.0 -dist dist
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

type selector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

type platform struct {
	Selector selector `json:"selector"`
	URI      string   `json:"uri"`
	SHA256   string   `json:"sha256"`
	Bin      string   `json:"bin"`
}

type manifest struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   map[string]string `json:"metadata"`
	Spec       struct {
		Version          string     `json:"version"`
		Homepage         string     `json:"homepage"`
		ShortDescription string     `json:"shortDescription"`
		Description      string     `json:"description"`
		Platforms        []platform `json:"platforms"`
	} `json:"spec"`
}

func main() {
	version := flag.String("version", "", "the release")
	url := flag.String("url", "", "where the archives are downloaded from (RELEASE_URL)")
	dist := flag.String("dist", "dist", "the directory with the archives; the manifest is written there")
	flag.Parse()
	if err := run(*version, strings.TrimRight(*url, "/"), *dist); err != nil {
		fmt.Fprintln(os.Stderr, "krew:", err)
		os.Exit(1)
	}
}

func run(version, url, dist string) error {
	if version == "" || url == "" {
		return fmt.Errorf("-version and -url are required")
	}
	archives, err := filepath.Glob(filepath.Join(dist, "kubectl-stratops-"+version+"-linux-*.tar.gz"))
	if err != nil || len(archives) == 0 {
		return fmt.Errorf("no kubectl-stratops-%s-linux-*.tar.gz in %s", version, dist)
	}
	sort.Strings(archives)
	var m manifest
	m.APIVersion, m.Kind = "krew.googlecontainertools.github.com/v1alpha2", "Plugin"
	m.Metadata = map[string]string{"name": "stratops"}
	m.Spec.Version = "v" + version
	m.Spec.Homepage = "https://github.com/stratops/stratops"
	m.Spec.ShortDescription = "Day-two operations on stratops trading Strategies"
	m.Spec.Description = "kubectl stratops shows a Strategy on one screen (conditions, the Redis gate's probes, channels, keys, the engine),\n" +
		"approves a held engine revision, stops, starts, suspends, resumes and reconciles Strategies,\n" +
		"and tails a Strategy's event history from its event logger.\n"
	for _, a := range archives {
		b, err := os.ReadFile(a)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		name := filepath.Base(a)
		arch := strings.TrimSuffix(strings.TrimPrefix(name, "kubectl-stratops-"+version+"-linux-"), ".tar.gz")
		m.Spec.Platforms = append(m.Spec.Platforms, platform{
			Selector: selector{MatchLabels: map[string]string{"os": "linux", "arch": arch}},
			URI:      url + "/" + name, SHA256: hex.EncodeToString(sum[:]), Bin: "kubectl-stratops",
		})
	}
	out, err := yaml.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dist, "stratops.krew.yaml"), out, 0o644)
}
