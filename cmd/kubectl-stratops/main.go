// Command kubectl-stratops is the kubectl plugin for day two with
// stratops: `kubectl stratops status|approve|stop|start|suspend|resume|
// reconcile|events|state`. It takes kubectl's flags and kubeconfig
// handling (k8s.io/cli-runtime), and namespaces as kubectl does.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/stratops/stratops/internal/version"
)

func main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	if err := newRootCommand(streams).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// newRootCommand is the plugin, writing to streams.
func newRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	p := &plugin{flags: flags, streams: streams}
	root := &cobra.Command{
		Use:           "kubectl-stratops",
		Short:         "Day-two operations on stratops Strategies",
		Version:       version.String("kubectl-stratops"),
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl stratops"},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	flags.AddFlags(root.PersistentFlags())
	root.AddCommand(
		p.statusCommand(),
		p.approveCommand(),
		p.setCommand("stop", "Stop a Live Strategy's engine on purpose (spec.engine.stopped: true); reconciling goes on",
			func(s *strategyPatch) error { return s.engineStopped(true) }),
		p.setCommand("start", "Start a stopped engine again (spec.engine.stopped: false)",
			func(s *strategyPatch) error { return s.engineStopped(false) }),
		p.setCommand("suspend", "Stop reconciling a Strategy (spec.suspend: true); what runs keeps running",
			func(s *strategyPatch) error { s.suspend(true); return nil }),
		p.setCommand("resume", "Reconcile a suspended Strategy again (spec.suspend: false)",
			func(s *strategyPatch) error { s.suspend(false); return nil }),
		p.reconcileCommand(),
		p.eventsCommand(),
		p.stateCommand(),
	)
	return root
}
