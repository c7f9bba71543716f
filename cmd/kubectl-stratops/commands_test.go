package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/internal/sampleengine"
	"github.com/stratops/stratops/pkg/messaging"
)

func namespace(t *testing.T, name string) string {
	t.Helper()
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func get(t *testing.T, ns, name string) *stratv1.Strategy {
	t.Helper()
	s := &stratv1.Strategy{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		t.Fatal(err)
	}
	return s
}

// loggerURL is where the local kubelet runs the Strategy's logger.
func loggerURL(t *testing.T, ns, name string) string {
	t.Helper()
	var url string
	waitFor(t, "the logger process", 30*time.Second, func() error {
		p, ok := kubelet.Processes()[ns+"/"+name+"-eventlogger"]
		if !ok {
			return fmt.Errorf("no process yet")
		}
		url = fmt.Sprintf("http://127.0.0.1:%d", p[1])
		return nil
	})
	return url
}

// liveWithTraffic runs a Live Strategy, as make run's Live sample, with
// the sample engine's chain publishing on it from this process, until
// every channel and key is healthy.
func liveWithTraffic(t *testing.T, ns, name string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &stratv1.Strategy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: stratv1.StrategySpec{
		Mode: stratv1.ModeLive, RedisLossPolicy: stratv1.RedisLossHalt,
		Redis: &stratv1.RedisSpec{Address: redisSrv.Addr, KeyPrefix: name + ":", HealthCheckInterval: &metav1.Duration{Duration: time.Second}},
	}}
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	c, err := messaging.Connect(ctx, messaging.Config{Mode: messaging.ModeLive, KeyPrefix: name + ":",
		Redis: messaging.RedisConfig{Addrs: []string{redisSrv.Addr}}}, messaging.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = sampleengine.Run(ctx, c, sampleengine.Options{Interval: 200 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	t.Cleanup(func() { cancel(); wg.Wait(); _ = c.Close(context.Background()) })
	waitFor(t, "every channel and key healthy", 90*time.Second, func() error {
		st := get(t, ns, name).Status
		if st.ChannelsSummary != "6/6" || st.KeysSummary != "9/9" || st.Phase != stratv1.PhaseRunning {
			return fmt.Errorf("phase %s, channels %s, keys %s", st.Phase, st.ChannelsSummary, st.KeysSummary)
		}
		return nil
	})
}

// figuresOf blanks what changes from run to run: times, counts, rates,
// lags, TTLs, ages, the Redis version, the logger's leader.
var figuresOf = []func(string) string{
	replace(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`, "<time>"),
	replace(`\d+(\.\d+)?/s`, "<rate>"),
	replace(`\b(\d+h)?(\d+m)?\d+(\.\d+)?(µs|ms|s)\b`, "<duration>"),
	replace(`\b\d+h0m0s\b`, "<duration>"),
	replace(`master 7\.\d+\.\d+`, "master <version>"),
	replace(`leader [^ \n]+`, "leader <leader>"),
	replace(`(?m)^(  [✔✘] +[a-z:_]+ +\d+ +<[a-z]+> +[^ ]+ +[^ ]+ +)\d+`, "${1}<n>"),
	replace(`\{"[^\n]*\}`, "<message>"),
	replace(`127\.0\.0\.1:\d+`, "<redis>"),
	replace(`-?\d+\.\d{3,}`, "<number>"),
	// Column widths follow the figures: one space run of each.
	replace(` {2,}`, "  "),
	// Lags show once the window has some: either way here.
	replace(`(?m)^(  [✔✘]  [a-z:_]+  \d+  (<rate>|-)  )\S+  \S+  `, "${1}<lag>  <lag>  "),
}

// TestStatus_TheLiveSampleShowsEveryChannelAndKey: `kubectl stratops
// status` on a Live Strategy with traffic, as make run's Live sample,
// shows every channel and key, with the logger's rates and key ages; the
// same without the logger leaves those out and says why; -o json is the
// Strategy.
func TestStatus_TheLiveSampleShowsEveryChannelAndKey(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "status")
	liveWithTraffic(t, ns, "eth-basis")
	out, err := run(ctx, "", "-n", ns, "status", "eth-basis", "--logger-url", loggerURL(t, ns, "eth-basis"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl stratops status eth-basis:\n%s", out)
	for _, ch := range messaging.Standard(messaging.ModeLive).Channels {
		if !strings.Contains(out, "  ✔  "+ch.Name+" ") {
			t.Errorf("channel %s is not shown healthy", ch.Name)
		}
	}
	for _, k := range messaging.Standard(messaging.ModeLive).Keys {
		if !strings.Contains(out, "  ✔  "+k.Name+" ") {
			t.Errorf("key %s is not shown healthy", k.Name)
		}
	}
	if strings.Contains(out, "left out") {
		t.Errorf("the logger's figures are left out though it is reachable")
	}
	golden(t, "status", out, figuresOf...)

	out, err = run(ctx, "", "-n", ns, "status", "eth-basis")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("without the logger:\n%s", out)
	if !strings.Contains(out, "(rates and key ages left out: the leading event logger eth-basis-eventlogger-local is not a pod here (use --logger-url where there is no kubelet))") {
		t.Errorf("without the logger the status does not say why its figures are left out:\n%s", out)
	}
	out, err = run(ctx, "", "-n", ns, "status", "eth-basis", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var s stratv1.Strategy
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Name != "eth-basis" || s.Status.ChannelsSummary != "6/6" {
		t.Errorf("-o json: %v, %q", err, s.Name)
	}
	if _, err := run(ctx, "", "-n", ns, "status", "nope"); err == nil || !strings.Contains(err.Error(), `strategy "nope" not found in namespace "status"`) {
		t.Errorf("a missing Strategy: %v", err)
	}
}

// TestEvents_PrintsFiltersAndFollows: `events` prints the latest events,
// --channel filters, -o json writes the logger's entries, and --follow
// receives a message published during the test.
func TestEvents_PrintsFiltersAndFollows(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "events")
	liveWithTraffic(t, ns, "desk")
	url := loggerURL(t, ns, "desk")
	out, err := run(ctx, "", "-n", ns, "events", "desk", "--logger-url", url, "--tail", "5", "--channel", "risk:calculated")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "events", out, figuresOf...)
	out, err = run(ctx, "", "-n", ns, "events", "desk", "--logger-url", url, "--since", "1h", "-o", "json", "--channel", "pnl:calculated")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		var e entry
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Channel != "pnl:calculated" || e.Component != "pnl_calculator" {
			t.Fatalf("-o json line %q: %v", l, err)
		}
	}
	if len(lines) < 3 {
		t.Errorf("--since 1h gave %d pnl:calculated events", len(lines))
	}

	// --follow: a marked event published now is printed.
	fctx, stop := context.WithCancel(ctx)
	var followed strings.Builder
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() {
		w := &lockedWriter{mu: &mu, b: &followed}
		cmd := newRootCommand(streamsTo(w))
		cmd.SetArgs([]string{"--kubeconfig", kubeconfig, "-n", ns, "events", "desk", "--logger-url", url, "--follow", "--tail", "1", "--channel", "strategy:instructions", "--poll-interval", "200ms"})
		done <- cmd.ExecuteContext(fctx)
	}()
	time.Sleep(time.Second)
	c, err := messaging.Connect(ctx, messaging.Config{Mode: messaging.ModeLive, KeyPrefix: "desk:", Redis: messaging.RedisConfig{Addrs: []string{redisSrv.Addr}}},
		messaging.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close(ctx) }()
	if err := c.Publish(ctx, "strategy:instructions", map[string]string{"marker": "followed-by-the-plugin"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "--follow prints the event published during the test", 15*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if !strings.Contains(followed.String(), "followed-by-the-plugin") {
			return fmt.Errorf("printed so far:\n%s", followed.String())
		}
		return nil
	})
	stop()
	if err := <-done; err != nil {
		t.Errorf("events --follow ended with %v", err)
	}
}

// TestState_PrintsAKeysLatestValue: `state NAME KEY` prints the value and
// the TTL left; a key outside the catalog is refused naming it.
func TestState_PrintsAKeysLatestValue(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "state")
	liveWithTraffic(t, ns, "book")
	url := loggerURL(t, ns, "book")
	out, err := run(ctx, "", "-n", ns, "state", "book", "risk:current", "--logger-url", url)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "state", out, figuresOf...)
	out, err = run(ctx, "", "-n", ns, "state", "book", "config:strategy", "--logger-url", url, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"ttlSeconds": -1`) {
		t.Errorf("a persistent key's ttlSeconds: %s", out)
	}
	if _, err := run(ctx, "", "-n", ns, "state", "book", "orders:placed", "--logger-url", url); err == nil || !strings.Contains(err.Error(), "orders:placed") {
		t.Errorf("a key outside the catalog: %v", err)
	}
}

// TestApprove_RollsAHeldRevisionExactlyOnce: with a revision held
// (updateStrategy Manual), approve shows what differs, does nothing when
// the answer is no, and with --yes writes the approval: the engine
// Deployment rolls to the revision exactly once. Then nothing is pending,
// and approve refuses; so does one whose revision changed since it was
// shown.
func TestApprove_RollsAHeldRevisionExactlyOnce(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "approve")
	s := &stratv1.Strategy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "held"}, Spec: stratv1.StrategySpec{
		Mode:  stratv1.ModeLive,
		Redis: &stratv1.RedisSpec{Address: redisSrv.Addr, KeyPrefix: "held:", HealthCheckInterval: &metav1.Duration{Duration: time.Second}},
		Engine: &stratv1.EngineSpec{UpdateStrategy: stratv1.UpdateManual, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "engine", Image: "engine:1"}}}}},
	}}
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	engine := func() *appsv1.Deployment {
		d := &appsv1.Deployment{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "held-engine"}, d); err != nil {
			return nil
		}
		return d
	}
	waitFor(t, "the engine Deployment and its revision", 60*time.Second, func() error {
		if engine() == nil || get(t, ns, "held").Status.Engine == nil || get(t, ns, "held").Status.Engine.Revision == "" {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if _, err := run(ctx, "", "-n", ns, "approve", "held", "--yes"); err == nil || !strings.Contains(err.Error(), "nothing to approve") {
		t.Fatalf("approve with nothing held: %v", err)
	}
	cur := get(t, ns, "held")
	base := cur.DeepCopy()
	cur.Spec.Engine.Template.Spec.Containers[0].Image = "engine:2"
	if err := k8s.Patch(ctx, cur, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
	var held pending
	waitFor(t, "the new revision held", 60*time.Second, func() error {
		var ok bool
		if held, ok = pendingOf(get(t, ns, "held")); !ok {
			return fmt.Errorf("not held yet")
		}
		return nil
	})
	before := engine()
	out, err := run(ctx, "n\n", "-n", ns, "approve", "held")
	if err == nil || !strings.Contains(out, "It differs in: ") || !strings.Contains(out, "Approve revision "+held.revision+"? [y/N]") {
		t.Fatalf("approve answered no: %v\n%s", err, out)
	}
	if a := get(t, ns, "held").Annotations[stratv1.AnnotationApproveRevision]; a != "" {
		t.Fatalf("answered no, yet approved %s", a)
	}
	p := &plugin{flags: newRootFlags(ns), streams: streamsTo(io.Discard)}
	if err := p.approve(ctx, "held", "0000000000"); err == nil || !strings.Contains(err.Error(), "the held revision changed") {
		t.Fatalf("approving a revision other than the held one: %v", err)
	}
	out, err = run(ctx, "", "-n", ns, "approve", "held", "--yes")
	if err != nil || !strings.Contains(out, "approved revision "+held.revision) {
		t.Fatalf("approve --yes: %v\n%s", err, out)
	}
	waitFor(t, "the engine rolls to the approved revision", 60*time.Second, func() error {
		d := engine()
		if got := d.Spec.Template.Annotations[children.AnnotationRevision]; got != held.revision {
			return fmt.Errorf("the engine's template is revision %s", got)
		}
		return nil
	})
	time.Sleep(3 * time.Second)
	if d := engine(); d.Generation != before.Generation+1 {
		t.Errorf("the engine Deployment went from generation %d to %d: it rolled %d times, want once", before.Generation, d.Generation, d.Generation-before.Generation)
	}
	if _, err := run(ctx, "", "-n", ns, "approve", "held", "--yes"); err == nil || !strings.Contains(err.Error(), "nothing to approve") {
		t.Errorf("approve after the roll: %v", err)
	}
}

// TestLifecycleCommands: stop and start set spec.engine.stopped, suspend
// and resume spec.suspend, reconcile waits until the operator handled it;
// stopping a Strategy without an engine is refused naming the field.
func TestLifecycleCommands(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "lifecycle")
	s := &stratv1.Strategy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "desk"}, Spec: stratv1.StrategySpec{
		Mode:  stratv1.ModeLive,
		Redis: &stratv1.RedisSpec{Address: redisSrv.Addr, KeyPrefix: "desk:", HealthCheckInterval: &metav1.Duration{Duration: time.Second}},
		Engine: &stratv1.EngineSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "engine", Image: "engine:1"}}}}},
	}}
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cmd, said string
		check     func(*stratv1.Strategy) bool
	}{
		{"stop", "engine stopped", func(s *stratv1.Strategy) bool { return s.Spec.Engine.Stopped }},
		{"start", "engine started", func(s *stratv1.Strategy) bool { return !s.Spec.Engine.Stopped }},
		{"suspend", "suspended", func(s *stratv1.Strategy) bool { return s.Spec.Suspend }},
		{"resume", "resumed", func(s *stratv1.Strategy) bool { return !s.Spec.Suspend }},
	} {
		out, err := run(ctx, "", "-n", ns, tc.cmd, "desk")
		if err != nil || !strings.Contains(out, "strategy.stratops.dev/desk "+tc.said) || !tc.check(get(t, ns, "desk")) {
			t.Errorf("%s: %v %q", tc.cmd, err, out)
		}
	}
	out, err := run(ctx, "", "-n", ns, "reconcile", "desk")
	if err != nil || !strings.Contains(out, "✔ reconciled") {
		t.Errorf("reconcile: %v %q", err, out)
	}
	if got := get(t, ns, "desk"); got.Status.LastHandledReconcileAt != got.Annotations[stratv1.AnnotationReconcileRequestedAt] {
		t.Errorf("lastHandledReconcileAt %q, annotation %q", got.Status.LastHandledReconcileAt, got.Annotations[stratv1.AnnotationReconcileRequestedAt])
	}
	bt := &stratv1.Strategy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bt"}, Spec: stratv1.StrategySpec{Mode: stratv1.ModeBacktest}}
	if err := k8s.Create(ctx, bt); err != nil {
		t.Fatal(err)
	}
	if _, err := run(ctx, "", "-n", ns, "stop", "bt"); err == nil || !strings.Contains(err.Error(), "no spec.engine") {
		t.Errorf("stop without an engine: %v", err)
	}
	out, err = run(ctx, "", "-n", ns, "__complete", "status", "")
	if err != nil || !strings.Contains(out, "bt\n") || !strings.Contains(out, "desk\n") {
		t.Errorf("completion of a Strategy name: %v %q", err, out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
