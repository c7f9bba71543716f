//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratopsv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/pkg/messaging"
	"github.com/stratops/stratops/test/e2e/cluster"
)

// timed records how long a scenario took, for the run's summary.
func timed(t *testing.T) {
	start := time.Now()
	t.Cleanup(func() {
		timings[t.Name()] = time.Since(start)
		t.Logf("%s took %s", t.Name(), time.Since(start).Round(100*time.Millisecond))
	})
}

// namespace makes a namespace that enforces the restricted Pod Security
// Standard, so every pod stratops creates there must meet it.
func namespace(t *testing.T, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
	}}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	return name
}

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(time.Second)
	}
}

func getStrategy(ns, name string) (*stratopsv1.Strategy, error) {
	s := &stratopsv1.Strategy{}
	return s, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s)
}

func condition(s *stratopsv1.Strategy, typ string) *metav1.Condition {
	return apimeta.FindStatusCondition(s.Status.Conditions, typ)
}

// strategyPods lists the pods of one component ("event-logger", "engine")
// of a Strategy.
func strategyPods(ns, name, component string) ([]corev1.Pod, error) {
	var pods corev1.PodList
	err := k8s.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{
		"stratops.dev/strategy": name, "app.kubernetes.io/component": component,
	})
	return pods.Items, err
}

// runningReady says whether exactly n pods are Running with every container
// ready (their real readiness probes passed) and none is being deleted.
func runningReady(pods []corev1.Pod, n int) error {
	var live []corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	if len(live) != n {
		return fmt.Errorf("%d pods, want %d", len(live), n)
	}
	for _, p := range live {
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("pod %s is %s", p.Name, p.Status.Phase)
		}
		for _, c := range p.Status.ContainerStatuses {
			if !c.Ready {
				return fmt.Errorf("pod %s container %s not ready", p.Name, c.Name)
			}
		}
		if c := podCondition(&p, corev1.PodReady); c == nil || c.Status != corev1.ConditionTrue {
			return fmt.Errorf("pod %s not Ready", p.Name)
		}
	}
	return nil
}

func podCondition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// hasEvent says whether an event of that type and reason regards the
// Strategy.
func hasEvent(ns, name, typ, reason string) (bool, error) {
	var list eventsv1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		return false, err
	}
	for _, e := range list.Items {
		if e.Regarding.Kind == "Strategy" && e.Regarding.Name == name && e.Type == typ && e.Reason == reason {
			return true, nil
		}
	}
	return false, nil
}

func deployment(ns, name string) (*appsv1.Deployment, error) {
	d := &appsv1.Deployment{}
	return d, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d)
}

// hostRedis starts a redis-server on the bridge gateway: a Redis outside
// the cluster, which the pods reach at cluster.GatewayIP. It keeps every
// acknowledged write across a kill (appendfsync always).
func hostRedis(t *testing.T, args ...string) *redisserver.Server {
	t.Helper()
	srv, err := redisserver.Start(redisserver.Options{Host: cluster.GatewayIP, Persist: true, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// observer subscribes to a Strategy's chain channels from the host, as an
// independent witness of what its engine published: the canonical form of
// every valid message, by channel.
type observer struct {
	mu   sync.Mutex
	seen map[string]int
	sub  *redis.PubSub
	done chan struct{}
}

// standard is the catalog the witness decodes with.
var standard = messaging.Standard(messaging.ModeLive)

var chainChannels = []string{"position:updated", "exposure:calculated", "risk:calculated", "pnl:calculated", "strategy:instructions"}

func observe(t *testing.T, rdb *redis.Client, prefix string) *observer {
	t.Helper()
	var chans []string
	for _, c := range chainChannels {
		chans = append(chans, prefix+c)
	}
	o := &observer{seen: map[string]int{}, sub: rdb.Subscribe(context.Background(), chans...), done: make(chan struct{})}
	if _, err := o.sub.Receive(context.Background()); err != nil {
		t.Fatalf("subscribing: %v", err)
	}
	ch := o.sub.Channel(redis.WithChannelSize(10000))
	go func() {
		defer close(o.done)
		for m := range ch {
			channel := strings.TrimPrefix(m.Channel, prefix)
			if _, err := standard.DecodeEvent(channel, []byte(m.Payload), messaging.DecodeOptions{}); err != nil {
				continue // malformed on purpose: the logger skips and counts it
			}
			o.mu.Lock()
			o.seen[channel+" "+m.Payload]++
			o.mu.Unlock()
		}
	}()
	return o
}

// stop ends the subscription and returns what was seen.
func (o *observer) stop() map[string]int {
	_ = o.sub.Close()
	<-o.done
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seen
}

// history reads a Strategy's events:history: the canonical form of every
// entry, with how many times it is there, and the entry ids.
func history(ctx context.Context, rdb *redis.Client, prefix string) (map[string]int, map[string]int, error) {
	msgs, err := rdb.XRange(ctx, prefix+"events:history", "-", "+").Result()
	if err != nil {
		return nil, nil, err
	}
	byMsg, byID := map[string]int{}, map[string]int{}
	for _, m := range msgs {
		raw, _ := m.Values["message"].(string)
		ch, _ := m.Values["channel"].(string)
		id, _ := m.Values["id"].(string)
		if _, err := standard.DecodeEvent(ch, []byte(raw), messaging.DecodeOptions{}); err != nil {
			return nil, nil, fmt.Errorf("history entry %s does not decode: %w", m.ID, err)
		}
		// The logger keeps payloads as they came: compared byte for byte.
		byMsg[ch+" "+raw]++
		byID[id]++
	}
	return byMsg, byID, nil
}

// managerLogsOnFailure prints the managers' warnings and errors when the
// test fails: what the operator said is the first thing to read.
func managerLogsOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		pods, _ := kubectl("-n", operatorNS, "get", "pods", "-o", "name")
		for _, p := range strings.Fields(pods) {
			out, _ := kubectl("-n", operatorNS, "logs", p)
			var lines []string
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, `"level":"error"`) || strings.Contains(l, `"level":"warn"`) || strings.Contains(l, "leader") ||
					strings.Contains(l, "Applied") {
					lines = append(lines, l)
				}
			}
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("%s:\n%s", p, strings.Join(lines, "\n"))
		}
	})
}

// readyLiveWithEngine creates a Live Strategy with the sample engine on
// the Redis at addr (mutate may change it) and waits until it is Ready.
func readyLiveWithEngine(t *testing.T, ns, name, addr string, mutate func(*stratopsv1.Strategy)) {
	t.Helper()
	s := &stratopsv1.Strategy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: stratopsv1.StrategySpec{
			Mode:   stratopsv1.ModeLive,
			Redis:  &stratopsv1.RedisSpec{Address: addr, KeyPrefix: name + ":", HealthCheckInterval: &metav1.Duration{Duration: 3 * time.Second}},
			Engine: sampleEngine(),
		},
	}
	if mutate != nil {
		mutate(s)
	}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl("-n", ns, "wait", "--for=condition=Ready", "strategy/"+name, "--timeout=180s"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// runningEnginePod waits for the Strategy's one engine pod to be Running
// and Ready, and returns it.
func runningEnginePod(t *testing.T, ns, name string) corev1.Pod {
	t.Helper()
	var engine corev1.Pod
	eventually(t, 60*time.Second, "the engine pod runs", func() error {
		pods, err := strategyPods(ns, name, "engine")
		if err != nil {
			return err
		}
		if err := runningReady(pods, 1); err != nil {
			return err
		}
		engine = pods[0]
		return nil
	})
	return engine
}

// oneEnginePod is the UID of the Strategy's one engine pod, Running and
// Ready.
func oneEnginePod(ns, name string) (types.UID, error) {
	pods, err := strategyPods(ns, name, "engine")
	if err != nil {
		return "", err
	}
	if err := runningReady(pods, 1); err != nil {
		return "", err
	}
	return pods[0].UID, nil
}
