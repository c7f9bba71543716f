package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// plugin holds what every command shares: kubectl's flags and the streams.
type plugin struct {
	flags   *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams

	cfg *rest.Config
	c   client.Client
	ns  string
}

// connect reads the kubeconfig as kubectl does (--kubeconfig, --context,
// -n, ...) once.
func (p *plugin) connect() error {
	if p.c != nil {
		return nil
	}
	cfg, err := p.flags.ToRESTConfig()
	if err != nil {
		return err
	}
	ns, _, err := p.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := stratv1.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	p.cfg, p.c, p.ns = cfg, c, ns
	return nil
}

// strategy reads a Strategy of the namespace; a missing one is an error
// that names it.
func (p *plugin) strategy(ctx context.Context, name string) (*stratv1.Strategy, error) {
	if err := p.connect(); err != nil {
		return nil, err
	}
	s := &stratv1.Strategy{}
	err := p.c.Get(ctx, client.ObjectKey{Namespace: p.ns, Name: name}, s)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("strategy %q not found in namespace %q", name, p.ns)
	}
	return s, err
}

// completeStrategies completes a Strategy name from the namespace.
func (p *plugin) completeStrategies(_ *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 || p.connect() != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(stratv1.GroupVersion.WithKind("StrategyList"))
	if err := p.c.List(context.Background(), list, client.InNamespace(p.ns)); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, s := range list.Items {
		if strings.HasPrefix(s.Name, prefix) {
			out = append(out, s.Name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// nameCommand is a command on one Strategy, completing its name.
func (p *plugin) nameCommand(use, short string, run func(ctx context.Context, cmd *cobra.Command, name string) error) *cobra.Command {
	return &cobra.Command{
		Use:               use,
		Short:             short,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: p.completeStrategies,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Minute)
			defer cancel()
			return run(ctx, cmd, args[0])
		},
	}
}

// printObject writes v as -o json or yaml.
func printObject(w io.Writer, format string, v any) error {
	switch format {
	case "json":
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("-o %q: want json or yaml", format)
}

// forbidden turns a refusal of the API server into what the user lacks.
func forbidden(err error, verb, resource, name, ns string) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("you may not %s %s/%s in namespace %s (ask for that right): %w", verb, resource, name, ns, err)
	}
	return err
}
