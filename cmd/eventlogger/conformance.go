package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/stratops/stratops/internal/conformance"
	"github.com/stratops/stratops/pkg/messaging"
)

const conformanceUsage = `usage: eventlogger conformance [flags] (--image IMAGE [-- ARG...] | -- COMMAND [ARG...])

Checks a component against the messaging standard before it ships: starts
a redis-server and this event logger on a Strategy's catalog, runs the
component with the environment the operator would give it, and reports
every channel and key it touched. Exit status: 0 conformant, 1 faults,
2 the check could not be made.

Flags:
`

// runConformance is `eventlogger conformance`.
func runConformance(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eventlogger conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { _, _ = fmt.Fprint(stderr, conformanceUsage); fs.PrintDefaults() }
	catalogFile := fs.String("catalog", "", "the Strategy's catalog (JSON, as the operator writes it); default: the standard's")
	strategy := fs.String("strategy", "", "NAMESPACE/NAME: take the catalog of this Strategy on the cluster of the current kubeconfig (with kubectl)")
	mode := fs.String("mode", "", "Backtest or Live; default: the catalog's, else Live")
	prefix := fs.String("key-prefix", "", "the key prefix; default: the catalog's")
	component := fs.String("component", "", "the catalog's name of the component (e.g. position_monitor): what it publishes, writes and subscribes to must happen")
	duration := fs.Duration("duration", 10*time.Second, "how long the component runs")
	junit := fs.String("junit", "", "also write the report as JUnit XML to this file")
	image := fs.String("image", "", "run this image as the component: podman run --rm --network host IMAGE")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	command := fs.Args()
	if *image != "" {
		// Arguments after -- go to the image's entrypoint.
		run := append([]string{"podman", "run", "--rm", "--network", "host"}, podmanEnv()...)
		command = append(append(run, *image), command...)
	}
	cat, err := conformanceCatalog(*catalogFile, *strategy, *mode, *prefix)
	if err == nil && len(command) == 0 {
		err = errors.New("no component: give --image IMAGE or -- COMMAND [ARG...]")
	}
	if err != nil {
		fmt.Fprintln(stderr, "eventlogger conformance:", err)
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "eventlogger conformance:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := conformance.Run(ctx, conformance.Options{Catalog: cat, Command: command, Component: *component,
		Duration: *duration, LoggerBinary: self, Output: stderr})
	if err != nil {
		fmt.Fprintln(stderr, "eventlogger conformance:", err)
		return 2
	}
	r.WriteText(stdout)
	if *junit != "" {
		if err := writeJUnit(*junit, r); err != nil {
			fmt.Fprintln(stderr, "eventlogger conformance:", err)
			return 2
		}
	}
	if !r.OK() {
		return 1
	}
	return 0
}

// podmanEnv passes the component's environment into the container: the
// names only, podman takes the values from its own environment.
func podmanEnv() []string {
	var out []string
	for _, name := range []string{messaging.EnvMode, messaging.EnvRedisAddrs, messaging.EnvCatalogFile,
		messaging.EnvKeyPrefix, messaging.EnvEventLoggerToken} {
		out = append(out, "--env", name)
	}
	// The catalog file, where the environment says it is.
	return append(out, "--volume", os.TempDir()+":"+os.TempDir()+":ro")
}

func writeJUnit(path string, r *conformance.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.WriteJUnit(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// conformanceCatalog is the catalog to check against: a file, a
// Strategy's, or the standard's, with the mode and key prefix given.
func conformanceCatalog(file, strategy, mode, prefix string) (messaging.Catalog, error) {
	var cat messaging.Catalog
	var err error
	switch {
	case file != "" && strategy != "":
		return cat, errors.New("give --catalog or --strategy, not both")
	case strategy != "":
		var raw []byte
		if raw, err = strategyCatalog(strategy); err == nil {
			cat, err = messaging.ParseCatalog(raw)
		}
	case file != "":
		cat, err = messaging.LoadCatalog(file, messaging.ModeLive)
	default:
		cat = messaging.Standard(messaging.ModeLive)
	}
	if err != nil {
		return cat, err
	}
	switch mode {
	case "":
	case string(messaging.ModeLive), string(messaging.ModeBacktest):
		cat.Mode = messaging.Mode(mode)
	default:
		return cat, fmt.Errorf("--mode %q: must be Backtest or Live", mode)
	}
	if prefix != "" {
		cat.KeyPrefix = prefix
	}
	return cat, cat.Validate()
}

// strategyCatalog reads a Strategy's catalog from the cluster, with
// kubectl: the ConfigMap its event logger's pods mount.
func strategyCatalog(strategy string) ([]byte, error) {
	ns, name, ok := strings.Cut(strategy, "/")
	if !ok || ns == "" || name == "" {
		return nil, fmt.Errorf("--strategy %q: want NAMESPACE/NAME", strategy)
	}
	kubectl := func(args ...string) (string, error) {
		out, err := exec.Command("kubectl", args...).Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("kubectl %s: %s", strings.Join(args, " "), strings.TrimSpace(string(ee.Stderr)))
		}
		return strings.TrimSpace(string(out)), err
	}
	cm, err := kubectl("-n", ns, "get", "deployment", name+"-eventlogger", "-o",
		`jsonpath={.spec.template.spec.volumes[?(@.name=="catalog")].configMap.name}`)
	if err != nil {
		return nil, err
	}
	if cm == "" {
		return nil, fmt.Errorf("the Strategy %s/%s's event logger mounts no catalog", ns, name)
	}
	raw, err := kubectl("-n", ns, "get", "configmap", cm, "-o", `jsonpath={.data.catalog\.json}`)
	return []byte(raw), err
}
