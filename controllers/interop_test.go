package controllers

import (
	"bufio"
	"context"
	"encoding/json"
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

// TestInterop_TheStandardsPythonComponentsAreLoggedWholeAndHealthy runs
// the standard's five components as its "Component Pub/Sub Patterns"
// section writes them, in Python with redis-py (a client nobody here
// wrote), against the event logger as the operator provisions it (its
// Deployment's environment and catalog, run as a process). Every message
// of the chain is in events:history with its payload as it was published,
// none is counted invalid or nonconforming, and the Strategy shows every
// channel and key healthy, lag included.
func TestInterop_TheStandardsPythonComponentsAreLoggedWholeAndHealthy(t *testing.T) {
	g := NewWithT(t)
	if out, err := exec.Command(debianPython, "-c", "import redis").CombinedOutput(); err != nil {
		t.Fatalf("%s with redis-py is needed (make test installs python3-redis): %v\n%s", debianPython, err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := startRedis(t)
	ns := newNamespace(t)
	dir := t.TempDir()
	logger := filepath.Join(dir, "eventlogger")
	if out, err := exec.Command("go", "build", "-o", logger, "../cmd/eventlogger").CombinedOutput(); err != nil {
		t.Fatalf("building the event logger: %v\n%s", err, out)
	}
	kubelet := &localrun.Kubelet{Client: k8sClient, Binary: logger, Dir: dir, Namespace: ns, Log: logr.Discard()}
	kubeletDone := make(chan struct{})
	go func() { kubelet.Run(ctx); close(kubeletDone) }()
	defer func() { cancel(); <-kubeletDone }()

	// The standard's catalog, no key prefix (the components are written
	// as the standard writes them), and a maxAge on the keys that have
	// one, so that their Python timestamps are read.
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
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "python"},
		Spec: stratv1.StrategySpec{
			Mode: stratv1.ModeLive,
			Redis: &stratv1.RedisSpec{Address: srv.Addr,
				HealthCheckInterval: &metav1.Duration{Duration: time.Second}},
			Messaging: &stratv1.MessagingSpec{Keys: keys},
		},
	}
	g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
	g.Eventually(func() stratv1.StrategyPhase { return getStrategy(g, ns, "python").Status.Phase }, timeout, interval).
		Should(Equal(stratv1.PhaseRunning), "the logger process is up and the Strategy runs")

	// The components get Redis the way an engine would: from the
	// environment the operator gave the Strategy's pods.
	var dep appsv1.Deployment
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "python-eventlogger"}, &dep)).To(Succeed())
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		if strings.HasPrefix(e.Name, "STRATOPS_REDIS_") && e.ValueFrom == nil {
			env = append(env, e.Name+"="+e.Value)
		}
	}
	record := filepath.Join(dir, "published.jsonl")
	const updates = 40
	py := exec.Command(debianPython, "../test/interop/standard_components.py", record, "40")
	py.Env = env
	stdout, err := py.StdoutPipe()
	g.Expect(err).NotTo(HaveOccurred())
	var stderr strings.Builder
	py.Stderr = &stderr
	g.Expect(py.Start()).To(Succeed())
	defer func() { _ = py.Process.Kill(); _ = py.Wait() }()
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

	// Every channel and key healthy, with the chain's traffic counted and
	// nothing counted invalid or nonconforming.
	g.Eventually(func(g Gomega) {
		st := getStrategy(g, ns, "python").Status
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

	// Every message of the chain, in history once, as it was published.
	_ = py.Process.Signal(syscall.SIGTERM)
	_ = py.Wait()
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
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
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
