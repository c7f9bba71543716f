package controllers

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/internal/localrun"
	"github.com/stratops/stratops/pkg/messaging"
)

// debianPython is Debian's interpreter, whose redis-py (python3-redis)
// make test installs; another python3 may come first on PATH.
const debianPython = "/usr/bin/python3"

// interop is a Strategy whose event logger runs as the operator provisions
// it (its Deployment's environment and catalog, run as a process by the
// local kubelet), for Python components to talk through.
type interop struct {
	ns, dir string
	redis   string
	// env is what an engine of the Strategy gets of Redis: the
	// non-secret STRATOPS_REDIS_* of the logger's Deployment.
	env []string
}

// startInterop runs a Live Strategy on the standard's catalog, no key
// prefix (the components are written as the standard writes them), and a
// maxAge on the keys that have one, so that their Python timestamps are
// read; it returns once the Strategy runs.
func startInterop(ctx context.Context, t *testing.T, g Gomega, name string) *interop {
	if out, err := exec.Command(debianPython, "-c", "import redis").CombinedOutput(); err != nil {
		t.Fatalf("%s with redis-py is needed (make test installs python3-redis): %v\n%s", debianPython, err, out)
	}
	srv := startRedis(t)
	ns := newNamespace(t)
	dir := t.TempDir()
	logger := filepath.Join(dir, "eventlogger")
	if out, err := exec.Command("go", "build", "-o", logger, "../cmd/eventlogger").CombinedOutput(); err != nil {
		t.Fatalf("building the event logger: %v\n%s", err, out)
	}
	kctx, cancel := context.WithCancel(ctx)
	kubelet := &localrun.Kubelet{Client: k8sClient, Binary: logger, Dir: dir, Namespace: ns, Log: logr.Discard()}
	kubeletDone := make(chan struct{})
	go func() { kubelet.Run(kctx); close(kubeletDone) }()
	t.Cleanup(func() { cancel(); <-kubeletDone })

	hour := &metav1.Duration{Duration: time.Hour}
	var keys []stratv1.KeySpec
	for _, k := range messaging.Standard(messaging.ModeLive).Keys {
		ks := stratv1.KeySpec{Name: k.Name}
		if k.TTL.Duration == time.Hour {
			ks.MaxAge = hour
		}
		keys = append(keys, ks)
	}
	s := &stratv1.Strategy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: stratv1.StrategySpec{
			Mode: stratv1.ModeLive,
			Redis: &stratv1.RedisSpec{Address: srv.Addr,
				HealthCheckInterval: &metav1.Duration{Duration: time.Second}},
			Messaging: &stratv1.MessagingSpec{Keys: keys},
		},
	}
	g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
	g.Eventually(func() stratv1.StrategyPhase { return getStrategy(g, ns, name).Status.Phase }, timeout, interval).
		Should(Equal(stratv1.PhaseRunning), "the logger process is up and the Strategy runs")
	var dep appsv1.Deployment
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-eventlogger"}, &dep)).To(Succeed())
	env := []string{"PATH=" + os.Getenv("PATH"), "PYTHONDONTWRITEBYTECODE=1"}
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		if strings.HasPrefix(e.Name, "STRATOPS_REDIS_") && e.ValueFrom == nil {
			env = append(env, e.Name+"="+e.Value)
		}
	}
	return &interop{ns: ns, dir: dir, redis: srv.Addr, env: env}
}

// runPython starts a script of the components and waits for it to print
// that it published everything; stop sends it SIGTERM and waits for it.
func (in *interop) runPython(t *testing.T, env []string, args ...string) (stop func()) {
	py := exec.Command(debianPython, args...)
	py.Env = append(append([]string{}, in.env...), env...)
	stdout, err := py.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	py.Stderr = &stderr
	if err := py.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = py.Process.Kill(); _ = py.Wait() })
	published := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "published") {
				published <- sc.Text()
			}
		}
	}()
	select {
	case <-published:
	case <-time.After(time.Minute):
		t.Fatalf("the Python components did not finish publishing:\n%s", stderr.String())
	}
	return func() {
		_ = py.Process.Signal(syscall.SIGTERM)
		_ = py.Wait()
		if t.Failed() {
			t.Logf("the components' stderr:\n%s", stderr.String())
		}
	}
}

// healthy waits for every channel and key of the Strategy to be healthy,
// with the chain's traffic counted and nothing invalid or nonconforming.
func (in *interop) healthy(g Gomega, name string, updates int) {
	g.Eventually(func(g Gomega) {
		st := getStrategy(g, in.ns, name).Status
		g.Expect(st.ChannelsSummary).To(Equal("6/6"), "channels: %+v", st.Channels)
		g.Expect(st.KeysSummary).To(Equal("9/9"), "keys: %+v", st.Keys)
		for _, c := range st.Channels {
			g.Expect(c.InvalidMessages).To(BeZero(), "%s invalid", c.Name)
			g.Expect(c.NonconformingMessages).To(BeZero(), "%s nonconforming", c.Name)
			if c.Name != messaging.ChannelEventsLogged {
				g.Expect(c.Messages).To(BeNumerically(">=", updates), "%s messages", c.Name)
				g.Expect(c.LagP99).NotTo(BeEmpty(), "%s lag", c.Name)
			}
		}
	}, 30*time.Second, interval).Should(Succeed())
}

// TestInterop_TheStandardsPythonComponentsAreLoggedWholeAndHealthy runs
// the standard's five components as its "Component Pub/Sub Patterns"
// section writes them, in Python with redis-py (a client nobody here
// wrote), against the event logger as the operator provisions it. Every
// message of the chain is in events:history with its payload as it was
// published, none is counted invalid or nonconforming, and the Strategy
// shows every channel and key healthy, lag included.
func TestInterop_TheStandardsPythonComponentsAreLoggedWholeAndHealthy(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	in := startInterop(ctx, t, g, "python")
	record := filepath.Join(in.dir, "published.jsonl")
	const updates = 40
	stop := in.runPython(t, nil, "../test/interop/standard_components.py", record, "40")
	in.healthy(g, "python", updates)

	// Every message of the chain, in history once, as it was published.
	stop()
	f, err := os.Open(record)
	g.Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	var sent []struct{ Channel, Payload string }
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct{ Channel, Payload string }
		g.Expect(json.Unmarshal(sc.Bytes(), &r)).To(Succeed())
		sent = append(sent, r)
	}
	g.Expect(sent).To(HaveLen(5*updates), "the chain: 5 messages per position update")
	rc := redis.NewClient(&redis.Options{Addr: in.redis})
	defer rc.Close()
	bus := eventlog.NewRedisStore(rc, eventlog.RedisStoreOptions{})
	cat := messaging.Standard(messaging.ModeLive)
	g.Eventually(func(g Gomega) {
		h, _, err := bus.History(ctx, 10_000, "")
		g.Expect(err).NotTo(HaveOccurred())
		logged := map[string]int{}
		for _, e := range h {
			g.Expect(e.Event.Shape).To(Equal(messaging.ShapeFlat))
			g.Expect(e.Event.Component).To(Equal(cat.Publisher(e.Channel)))
			g.Expect(e.Event.Nonconforming).To(BeEmpty())
			logged[e.Channel+" "+string(e.Event.Payload)]++
		}
		for _, m := range sent {
			g.Expect(logged[m.Channel+" "+m.Payload]).To(Equal(1), "%s %s in events:history", m.Channel, m.Payload)
		}
		g.Expect(h).To(HaveLen(len(sent)))
	}, 10*time.Second, interval).Should(Succeed())
}

// TestInterop_TheStandardsComponentsOnThePythonPackage: the same five
// components rewritten on the Python package (sdk/python), connecting
// from the environment the operator gives the Strategy's pods. Every
// message is logged once (each carries its position update's seq), all in
// the envelope with the catalog's publisher, none invalid or
// nonconforming; every channel and key is healthy; and every key holds the
// TTL its catalog policy gives it.
func TestInterop_TheStandardsComponentsOnThePythonPackage(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	in := startInterop(ctx, t, g, "package")
	sdk, err := filepath.Abs("../sdk/python")
	g.Expect(err).NotTo(HaveOccurred())
	const updates = 40
	stop := in.runPython(t, []string{"PYTHONPATH=" + sdk, messaging.EnvMode + "=Live"},
		"../test/interop/sdk_components.py", "40")
	defer stop()
	in.healthy(g, "package", updates)

	rc := redis.NewClient(&redis.Options{Addr: in.redis})
	defer rc.Close()
	cat := messaging.Standard(messaging.ModeLive)
	for _, k := range cat.Keys {
		ttl, err := rc.PTTL(ctx, k.Name).Result()
		g.Expect(err).NotTo(HaveOccurred())
		if k.Persistent() {
			g.Expect(ttl).To(BeNumerically("<", 0), "%s is persistent: no TTL", k.Name)
			continue
		}
		g.Expect(ttl).To(And(BeNumerically(">", k.TTL.Duration-time.Minute), BeNumerically("<=", k.TTL.Duration)),
			"%s holds its catalog TTL %s", k.Name, k.TTL.Duration)
	}
	bus := eventlog.NewRedisStore(rc, eventlog.RedisStoreOptions{})
	g.Eventually(func(g Gomega) {
		h, _, err := bus.History(ctx, 10_000, "")
		g.Expect(err).NotTo(HaveOccurred())
		seen := map[string]int{}
		for _, e := range h {
			g.Expect(e.Event.Shape).To(Equal(messaging.ShapeEnvelope))
			g.Expect(e.Event.Component).To(Equal(cat.Publisher(e.Channel)))
			g.Expect(e.Event.Nonconforming).To(BeEmpty())
			var msg struct{ Metadata struct{ Seq int } }
			g.Expect(json.Unmarshal(e.Event.Payload, &msg)).To(Succeed())
			seen[fmt.Sprintf("%s %d", e.Channel, msg.Metadata.Seq)]++
		}
		for _, ch := range []string{"position:updated", "exposure:calculated", "risk:calculated", "pnl:calculated", "strategy:instructions"} {
			for seq := 1; seq <= updates; seq++ {
				g.Expect(seen[fmt.Sprintf("%s %d", ch, seq)]).To(Equal(1), "%s seq %d in events:history", ch, seq)
			}
		}
		g.Expect(h).To(HaveLen(5 * updates))
	}, 10*time.Second, interval).Should(Succeed())
}
