package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/pkg/messaging"
)

// figures are what only the logger's API knows: each channel's rate over
// the last minute, and each key's age. Nothing is added to the status
// for them.
type figures struct {
	rates map[string]float64
	ages  map[string]time.Duration
	err   error
}

// statusCommand shows one screen about a Strategy.
func (p *plugin) statusCommand() *cobra.Command {
	var output, loggerURL string
	cmd := p.nameCommand("status NAME", "Show one screen about a Strategy: conditions, the gate's probes, channels, keys, the engine, backtests, the logger",
		func(ctx context.Context, cmd *cobra.Command, name string) error {
			s, err := p.strategy(ctx, name)
			if err != nil {
				return err
			}
			if output != "" {
				return printObject(p.streams.Out, output, s)
			}
			f := p.figures(ctx, s, loggerURL)
			return writeStatus(p.streams.Out, s, f, time.Now())
		})
	cmd.Flags().StringVarP(&output, "output", "o", "", "json or yaml: the Strategy as the API server has it")
	cmd.Flags().StringVar(&loggerURL, "logger-url", "", "the event logger's API URL, where there is no kubelet to forward to (make run, envtest)")
	return cmd
}

// figures asks the logger for the rates and ages; when it cannot be
// reached they are left out, and why is said.
func (p *plugin) figures(ctx context.Context, s *stratv1.Strategy, loggerURL string) figures {
	f := figures{rates: map[string]float64{}, ages: map[string]time.Duration{}}
	if s.Spec.Redis == nil && s.Status.EventLogger == nil {
		f.err = errNoLogger
		return f
	}
	api, err := p.logger(ctx, s, loggerURL)
	if err != nil {
		f.err = err
		return f
	}
	defer api.stop()
	now := time.Now()
	page, _, err := api.page(ctx, 1000, "")
	if err != nil {
		f.err = err
		return f
	}
	for _, c := range s.Status.Channels {
		f.rates[c.Name] = 0
	}
	for _, e := range page {
		if now.Sub(e.LoggedAt) <= time.Minute {
			f.rates[e.Channel] += 1.0 / 60
		}
	}
	for _, k := range s.Status.Keys {
		if k.Name == messaging.KeyEventsHistory || !k.Present {
			continue
		}
		var r stateResponse
		if code, err := api.get(ctx, "/state/"+k.Name, &r); err != nil || code != http.StatusOK {
			continue
		}
		if ts, _, err := messaging.DecodeKeyValue(r.Value, len(r.Value)+1); err == nil && !ts.IsZero() {
			f.ages[k.Name] = now.Sub(ts)
		}
	}
	return f
}

func mark(ok bool) string {
	if ok {
		return "✔"
	}
	return "✘"
}

// kstatusOf is the Strategy's kstatus, as Flux, Argo CD and kubectl wait
// read it.
func kstatusOf(s *stratv1.Strategy) string {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(s)
	if err != nil {
		return "Unknown"
	}
	res, err := kstatus.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		return "Unknown"
	}
	return res.Status.String()
}

// writeStatus writes the screen.
func writeStatus(w io.Writer, s *stratv1.Strategy, f figures, now time.Time) error {
	ew := &errWriter{w: w}
	ew.printf("Strategy %s/%s  %s  phase %s  kstatus %s\n", s.Namespace, s.Name, s.Spec.Mode, s.Status.Phase, kstatusOf(s))
	if s.Spec.Redis != nil {
		ew.printf("Redis     %s", s.Spec.Redis.Address)
		if r := s.Status.Redis; r != nil && r.Endpoint != "" {
			ew.printf("  (endpoint %s, %s %s)", r.Endpoint, r.Role, r.ServerVersion)
		}
		ew.printf("\n")
	} else {
		ew.printf("Redis     none: the in-process bus\n")
	}
	if l := s.Status.EventLogger; l != nil {
		ew.printf("Logger    %d/%d ready, leader %s\n", l.ReadyReplicas, l.Replicas, orDash(l.Leader))
	}
	ew.section("Conditions")
	tw := ew.table("", "TYPE", "STATUS", "REASON", "MESSAGE")
	for _, c := range s.Status.Conditions {
		ok := c.Status == "True"
		if c.Type == stratv1.ConditionReconciling || c.Type == stratv1.ConditionStalled || c.Type == stratv1.ConditionUpdatePending {
			ok = !ok
		}
		tw.row(mark(ok), c.Type, string(c.Status), c.Reason, c.Message)
	}
	tw.flush()
	writeProbes(ew, s)
	writeChannels(ew, s, f)
	writeKeys(ew, s, f)
	writeEngine(ew, s)
	if f.err != nil {
		ew.printf("\n(rates and key ages left out: %v)\n", f.err)
	}
	return ew.err
}

func writeProbes(ew *errWriter, s *stratv1.Strategy) {
	r := s.Status.Redis
	if r == nil || len(r.Probes) == 0 {
		return
	}
	ew.section("Gate probes")
	tw := ew.table("", "PROBE", "REASON", "MESSAGE")
	for _, pr := range r.Probes {
		tw.row(mark(pr.OK), pr.Name, orDash(pr.Reason), pr.Message)
	}
	tw.flush()
}

func writeChannels(ew *errWriter, s *stratv1.Strategy, f figures) {
	if len(s.Status.Channels) == 0 {
		return
	}
	ew.section("Channels " + s.Status.ChannelsSummary)
	tw := ew.table("", "CHANNEL", "SUBSCRIBERS", "RATE", "LAG P50", "LAG P99", "MESSAGES", "INVALID", "NONCONFORMING", "GAPS")
	for _, c := range s.Status.Channels {
		rate := "-"
		if r, ok := f.rates[c.Name]; ok && f.err == nil {
			rate = fmt.Sprintf("%.2f/s", r)
		}
		tw.row(mark(c.Healthy), c.Name, fmt.Sprint(c.Subscribers), rate, orDash(c.LagP50), orDash(c.LagP99),
			fmt.Sprint(c.Messages), fmt.Sprint(c.InvalidMessages), fmt.Sprint(c.NonconformingMessages), fmt.Sprint(c.Gaps))
	}
	tw.flush()
}

func writeKeys(ew *errWriter, s *stratv1.Strategy, f figures) {
	if len(s.Status.Keys) == 0 {
		return
	}
	ew.section("Keys " + s.Status.KeysSummary)
	tw := ew.table("", "KEY", "POLICY", "TTL", "AGE", "REASON")
	for _, k := range s.Status.Keys {
		policy, ttl, age := "persistent", "-", "-"
		if k.PolicyTTLSeconds != nil {
			policy = (time.Duration(*k.PolicyTTLSeconds) * time.Second).String()
		}
		if k.TTLSeconds != nil && *k.TTLSeconds >= 0 {
			ttl = (time.Duration(*k.TTLSeconds) * time.Second).String()
		}
		if a, ok := f.ages[k.Name]; ok {
			age = a.Round(time.Second).String()
		}
		tw.row(mark(k.Healthy), k.Name, policy, ttl, age, orDash(k.Reason))
	}
	tw.flush()
}

func writeEngine(ew *errWriter, s *stratv1.Strategy) {
	if e := s.Status.Engine; e != nil {
		ew.section("Engine")
		ew.printf("  %s %d/%d ready, revision %s\n", mark(e.ReadyReplicas == e.Replicas), e.ReadyReplicas, e.Replicas, orDash(e.Revision))
		if held, ok := pendingOf(s); ok {
			ew.printf("  ✘ revision %s is held (updateStrategy Manual); it differs in %s\n    approve it: kubectl stratops approve %s\n",
				held.revision, held.differs, s.Name)
		}
	}
	if len(s.Status.Backtests) > 0 {
		ew.section("Backtests")
		tw := ew.table("", "JOB", "REVISION", "OUTCOME", "STARTED")
		for _, b := range s.Status.Backtests {
			started := "-"
			if b.StartTime != nil {
				started = b.StartTime.UTC().Format(time.RFC3339)
			}
			tw.row(mark(b.Outcome != stratv1.BacktestFailed), b.Job, orDash(b.Revision), string(b.Outcome), started)
		}
		tw.flush()
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

func (e *errWriter) section(title string) { e.printf("\n%s\n", title) }

type table struct {
	ew *errWriter
	tw *tabwriter.Writer
}

func (e *errWriter) table(header ...string) *table {
	t := &table{ew: e, tw: tabwriter.NewWriter(e.w, 0, 4, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	if t.ew.err == nil {
		_, t.ew.err = fmt.Fprintln(t.tw, "  "+strings.Join(cells, "\t"))
	}
}

func (t *table) flush() {
	if err := t.tw.Flush(); err != nil && t.ew.err == nil {
		t.ew.err = err
	}
}
