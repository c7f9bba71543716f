package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

type eventsOptions struct {
	follow    bool
	channels  []string
	since     time.Duration
	tail      int
	output    string
	loggerURL string
	interval  time.Duration
}

// eventsCommand tails a Strategy's event history from its logger.
func (p *plugin) eventsCommand() *cobra.Command {
	o := &eventsOptions{}
	cmd := p.nameCommand("events NAME", "Show a Strategy's event history from its event logger (--follow for new events)",
		func(ctx context.Context, cmd *cobra.Command, name string) error {
			s, err := p.strategy(ctx, name)
			if err != nil {
				return err
			}
			api, err := p.logger(ctx, s, o.loggerURL)
			if err != nil {
				return err
			}
			defer api.stop()
			return o.run(ctx, api, p.streams.Out)
		})
	f := cmd.Flags()
	f.BoolVarP(&o.follow, "follow", "f", false, "keep printing events as they are logged (Ctrl-C to stop)")
	f.StringSliceVar(&o.channels, "channel", nil, "only these channels (repeat, or comma-separated)")
	f.DurationVar(&o.since, "since", 0, "only events logged within this long (e.g. 10m); default: the last --tail")
	f.IntVar(&o.tail, "tail", 20, "without --since, how many of the latest events to show")
	f.StringVarP(&o.output, "output", "o", "", "json: one JSON object per event")
	f.StringVar(&o.loggerURL, "logger-url", "", "the event logger's API URL, where there is no kubelet to forward to (make run, envtest)")
	f.DurationVar(&o.interval, "poll-interval", time.Second, "with --follow, how often to ask the logger")
	_ = f.MarkHidden("poll-interval")
	return cmd
}

func (o *eventsOptions) run(ctx context.Context, api *loggerAPI, w io.Writer) error {
	if o.output != "" && o.output != "json" {
		return fmt.Errorf("-o %q: events print as text or json", o.output)
	}
	entries, err := o.recent(ctx, api)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var last time.Time
	for _, e := range entries {
		if err := o.print(w, e); err != nil {
			return err
		}
		seen[e.ID], last = true, e.LoggedAt
	}
	for o.follow {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.interval):
		}
		page, _, err := api.page(ctx, 1000, "")
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, e := range page {
			if seen[e.ID] || e.LoggedAt.Before(last) || !o.wanted(e) {
				continue
			}
			if err := o.print(w, e); err != nil {
				return err
			}
			seen[e.ID], last = true, e.LoggedAt
		}
	}
	return nil
}

// recent are the events to show first: those within --since, or the last
// --tail, oldest first.
func (o *eventsOptions) recent(ctx context.Context, api *loggerAPI) ([]entry, error) {
	var out []entry
	cutoff := time.Now().Add(-o.since)
	before := ""
	for {
		page, next, err := api.page(ctx, 1000, before)
		if err != nil {
			return nil, err
		}
		done := next == ""
		for i := len(page) - 1; i >= 0; i-- {
			e := page[i]
			if o.since > 0 && e.LoggedAt.Before(cutoff) {
				done = true
				break
			}
			if o.wanted(e) {
				out = append(out, e)
			}
			if o.since == 0 && len(out) >= o.tail {
				done = true
				break
			}
		}
		if done {
			break
		}
		before = next
	}
	slices.Reverse(out)
	return out, nil
}

func (o *eventsOptions) wanted(e entry) bool {
	return len(o.channels) == 0 || slices.Contains(o.channels, e.Channel)
}

func (o *eventsOptions) print(w io.Writer, e entry) error {
	if o.output == "json" {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	mark := ""
	if e.Nonconforming != "" {
		mark = " ✘ " + e.Nonconforming
	}
	_, err := fmt.Fprintf(w, "%s  %-22s %s/%s%s  %s\n", e.LoggedAt.UTC().Format("2006-01-02T15:04:05.000Z"),
		e.Channel, e.Component, e.Event, mark, e.Message)
	return err
}

// stateCommand prints a key's latest value from the logger.
func (p *plugin) stateCommand() *cobra.Command {
	var output, loggerURL string
	cmd := &cobra.Command{
		Use:               "state NAME KEY",
		Short:             "Print the latest value of one of a Strategy's keys, from its event logger",
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: p.completeStrategies,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := p.strategy(ctx, args[0])
			if err != nil {
				return err
			}
			api, err := p.logger(ctx, s, loggerURL)
			if err != nil {
				return err
			}
			defer api.stop()
			var r stateResponse
			code, err := api.get(ctx, "/state/"+url.PathEscape(args[1]), &r)
			if code == http.StatusNotFound {
				return fmt.Errorf("key %s: %w", args[1], err)
			}
			if err != nil {
				return err
			}
			if output != "" {
				return printObject(p.streams.Out, output, r)
			}
			var pretty strings.Builder
			var v any
			if json.Unmarshal(r.Value, &v) == nil {
				b, _ := json.MarshalIndent(v, "", "  ")
				pretty.Write(b)
			} else {
				pretty.Write(r.Value)
			}
			ttl := "persistent (no TTL)"
			if r.TTLSeconds >= 0 {
				ttl = (time.Duration(r.TTLSeconds) * time.Second).String() + " left"
			}
			_, err = fmt.Fprintf(p.streams.Out, "%s  (TTL: %s)\n%s\n", args[1], ttl, pretty.String())
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "json or yaml: the logger's answer (key, ttlSeconds, value)")
	cmd.Flags().StringVar(&loggerURL, "logger-url", "", "the event logger's API URL, where there is no kubelet to forward to (make run, envtest)")
	return cmd
}
