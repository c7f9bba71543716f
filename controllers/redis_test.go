package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/internal/lifecycle"
	"github.com/stratops/stratops/internal/redisprobe"
	"github.com/stratops/stratops/internal/redisserver"
)

func liveOn(ns, name, addr string, policy stratv1.RedisLossPolicy) *stratv1.Strategy {
	return &stratv1.Strategy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: stratv1.StrategySpec{
			Mode: stratv1.ModeLive, RedisLossPolicy: policy,
			Redis: &stratv1.RedisSpec{
				Address: addr, KeyPrefix: name + ":",
				DialTimeout:         &metav1.Duration{Duration: 300 * time.Millisecond},
				HealthCheckInterval: &metav1.Duration{Duration: time.Second},
			},
			Engine: &stratv1.EngineSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "engine", Image: "engine:test"}},
			}}},
		},
	}
}

// liveEngine is the engine liveOn gives a Strategy.
func liveEngine() *stratv1.EngineSpec { return liveOn("", "", "", "").Spec.Engine }

// runningBacktest creates a Backtest with the engine engineSpec on
// redisOpen (mutate may change it), waits for its event logger and plays
// the kubelet for it, so that the engine's Job is made next.
func runningBacktest(g Gomega, ns, name string, mutate func(*stratv1.Strategy)) {
	s := backtest(ns, name)
	// The namespace in the prefix: one prefix has one owner, and tests
	// reuse names.
	s.Spec.Redis = &stratv1.RedisSpec{Address: redisOpen.Addr, KeyPrefix: ns + "-" + name + ":"}
	s.Spec.Engine = engineSpec()
	if mutate != nil {
		mutate(s)
	}
	createWithLogger(g, s)
}

// createWithLogger creates a Strategy and plays the kubelet for its event
// logger once the operator made it.
func createWithLogger(g Gomega, s *stratv1.Strategy) {
	ctx := context.Background()
	g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: s.Name + "-eventlogger"}, &appsv1.Deployment{})
	}, timeout, interval).Should(Succeed())
	markAvailable(g, s.Namespace, s.Name+"-eventlogger")
}

// runningLive creates a Live Strategy on addr (without an engine unless
// mutate adds one), plays the kubelet for it and waits until it is Running.
func runningLive(g Gomega, ns, name, addr string, mutate func(*stratv1.Strategy)) {
	ctx := context.Background()
	s := liveOn(ns, name, addr, stratv1.RedisLossHalt)
	s.Spec.Engine = nil
	if mutate != nil {
		mutate(s)
	}
	createWithLogger(g, s)
	if s.Spec.Engine != nil {
		g.Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-engine"}, &appsv1.Deployment{})
		}, timeout, interval).Should(Succeed())
		markAvailable(g, ns, name+"-engine")
	}
	g.Eventually(func(g Gomega) {
		g.Expect(getStrategy(g, ns, name).Status.Phase).To(Equal(stratv1.PhaseRunning))
	}, timeout, interval).Should(Succeed())
}

// betweenRounds gives a Strategy a health check interval of an hour: once
// its first probe round has passed, each reconcile in a test runs between
// rounds, with a health read-out alone.
func betweenRounds(s *stratv1.Strategy) {
	s.Spec.Redis.HealthCheckInterval = &metav1.Duration{Duration: time.Hour}
}

func probe(s *stratv1.Strategy, name string) *stratv1.ProbeResult {
	if s.Status.Redis == nil {
		return nil
	}
	for i := range s.Status.Redis.Probes {
		if s.Status.Redis.Probes[i].Name == name {
			return &s.Status.Redis.Probes[i]
		}
	}
	return nil
}

func notFound(ns, name string, o client.Object) bool {
	return apierrors.IsNotFound(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, o))
}

func hasEvent(g Gomega, ns, name, typ, reason string) bool {
	for _, e := range eventsFor(g, ns, name) {
		if e.Type == typ && e.Reason == reason {
			return true
		}
	}
	return false
}

func TestReconcile_LiveIsGatedUntilRedisPassesProbes(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	srv := startRedis(t)
	g.Expect(srv.Stop()).To(Succeed())

	g.Expect(k8sClient.Create(ctx, liveOn(ns, "gated", srv.Addr, stratv1.RedisLossHalt))).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "gated")
		g.Expect(s.Status.Phase).To(Equal(stratv1.PhaseGated))
		ready := condition(s, stratv1.ConditionReady)
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(stratv1.ReasonRedisNotReady))
		g.Expect(ready.Message).To(ContainSubstring("connect failed (Unreachable)"))
		g.Expect(condition(s, stratv1.ConditionRedisReady).Status).To(Equal(metav1.ConditionFalse))
		g.Expect(probe(s, "connect").OK).To(BeFalse())
		g.Expect(probe(s, "ping").Reason).To(Equal("Skipped"))
		g.Expect(kstatusOf(g, s)).To(Equal(kstatus.InProgressStatus))
		g.Expect(hasEvent(g, ns, "gated", corev1.EventTypeWarning, "GateFailed")).To(BeTrue())
	}, timeout, interval).Should(Succeed())
	g.Consistently(func() bool {
		return notFound(ns, "gated-eventlogger", &appsv1.Deployment{}) && notFound(ns, "gated-engine", &appsv1.Deployment{})
	}, 2*time.Second, interval).Should(BeTrue(), "nothing rolls out while gated")

	g.Expect(srv.Restart()).To(Succeed())
	start := time.Now()
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gated-eventlogger"}, &appsv1.Deployment{})).To(Succeed())
	}, timeout, interval).Should(Succeed())
	t.Logf("rolled out %s after Redis started (healthCheckInterval 1s)", time.Since(start).Round(time.Millisecond))
	g.Expect(time.Since(start)).To(BeNumerically("<", 2*time.Second+time.Second), "rolled out within two health-check intervals (plus a probe round)")
	// The engine follows once its event logger listens.
	g.Consistently(func() bool { return notFound(ns, "gated-engine", &appsv1.Deployment{}) }, time.Second, interval).Should(BeTrue(),
		"no engine before the event logger is available")
	markAvailable(g, ns, "gated-eventlogger")
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gated-engine"}, &appsv1.Deployment{})
	}, timeout, interval).Should(Succeed())
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "gated")
		g.Expect(s.Status.Redis.Role).To(Equal("master"))
		g.Expect(s.Status.Redis.ServerVersion).NotTo(BeEmpty())
		for _, p := range s.Status.Redis.Probes {
			g.Expect(p.OK).To(BeTrue(), "probe %s", p.Name)
		}
		g.Expect(hasEvent(g, ns, "gated", corev1.EventTypeNormal, "GatePassed")).To(BeTrue())
	}, timeout, interval).Should(Succeed())
}

func TestReconcile_ProbeFailuresNameTheirReason(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createSecret(t, ns, "wrong", "not-the-password")
	createSecret(t, ns, "right", testPassword)
	replica, err := redisserver.Start(redisserver.Options{ReplicaOf: redisOpen})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()

	cases := []struct {
		name, probe, reason string
		mutate              func(s *stratv1.Strategy)
	}{
		{"authfailed", "connect", "AuthFailed", func(s *stratv1.Strategy) {
			s.Spec.Redis.Address = redisAuth.Addr
			s.Spec.Redis.PasswordSecretRef = &stratv1.SecretKeySelector{Name: "wrong", Key: "password"}
		}},
		{"permissiondenied", "write-ttl", "PermissionDenied", func(s *stratv1.Strategy) {
			s.Spec.Redis.Address = redisAuth.Addr
			s.Spec.Redis.Username = "reader"
			s.Spec.Redis.PasswordSecretRef = &stratv1.SecretKeySelector{Name: "right", Key: "password"}
		}},
		{"readonlyreplica", "role", "ReadOnlyReplica", func(s *stratv1.Strategy) {
			s.Spec.Redis.Address = replica.Addr
		}},
		// An ACL that lets the logger connect, subscribe and SET but not
		// XADD: it would be ready while writing no history.
		// Someone wrote the logger's history as a string.
		{"wrongtype", "commands", "WrongType", func(s *stratv1.Strategy) {
			s.Spec.Redis.Address = redisOpen.Addr
			rc := redis.NewClient(&redis.Options{Addr: redisOpen.Addr})
			defer rc.Close()
			if err := rc.Set(context.Background(), s.Spec.Redis.KeyPrefix+"events:history", "not a stream", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}},
		{"nostream", "commands", "PermissionDenied", func(s *stratv1.Strategy) {
			s.Spec.Redis.Address = redisAuth.Addr
			s.Spec.Redis.Username = "nostream"
			s.Spec.Redis.PasswordSecretRef = &stratv1.SecretKeySelector{Name: "right", Key: "password"}
		}},
	}
	// What EventLoggerReady says of a Redis that refuses the logger's writes.
	loggerReason := map[string]string{"permissiondenied": stratv1.ReasonRedisPermissionDenied, "nostream": stratv1.ReasonRedisPermissionDenied,
		"readonlyreplica": stratv1.ReasonRedisReadOnly, "wrongtype": stratv1.ReasonRedisWrongType}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			s := liveOn(ns, tc.name, "", stratv1.RedisLossHalt)
			tc.mutate(s)
			g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
			g.Eventually(func(g Gomega) {
				s := getStrategy(g, ns, tc.name)
				p := probe(s, tc.probe)
				g.Expect(p).NotTo(BeNil())
				g.Expect(p.OK).To(BeFalse())
				g.Expect(p.Reason).To(Equal(tc.reason))
				g.Expect(s.Status.Phase).To(Equal(stratv1.PhaseGated))
				g.Expect(condition(s, stratv1.ConditionReady).Message).To(ContainSubstring(tc.probe + " failed (" + tc.reason + ")"))
				if want, ok := loggerReason[tc.name]; ok {
					c := condition(s, stratv1.ConditionEventLoggerReady)
					g.Expect(c.Reason).To(Equal(want))
					if tc.name == "nostream" {
						g.Expect(strings.ToLower(c.Message)).To(ContainSubstring("xadd"))
					}
					if tc.name == "wrongtype" {
						g.Expect(c.Message).To(ContainSubstring("wrongtype:events:history holds a string"))
					}
				}
			}, timeout, interval).Should(Succeed())
			g.Expect(notFound(ns, tc.name+"-eventlogger", &appsv1.Deployment{})).To(BeTrue())
		})
	}
	// The password is nowhere in status or events.
	g := NewWithT(t)
	var list stratv1.StrategyList
	g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	for _, s := range list.Items {
		for _, p := range s.Status.Redis.Probes {
			g.Expect(p.Message).NotTo(ContainSubstring(testPassword))
			g.Expect(p.Message).NotTo(ContainSubstring("not-the-password"))
		}
		for _, c := range s.Status.Conditions {
			g.Expect(c.Message).NotTo(ContainSubstring("not-the-password"))
		}
		for _, e := range eventsFor(g, ns, s.Name) {
			g.Expect(e.Note).NotTo(ContainSubstring("not-the-password"))
			g.Expect(e.Note).NotTo(ContainSubstring(testPassword))
		}
	}
}

func TestReconcile_RedisLostHaltsOrAlertsAndRecovers(t *testing.T) {
	for _, policy := range []stratv1.RedisLossPolicy{stratv1.RedisLossHalt, stratv1.RedisLossAlert} {
		t.Run(string(policy), func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			ns := newNamespace(t)
			srv := startRedis(t)
			name := strings.ToLower(string(policy))
			g.Expect(k8sClient.Create(ctx, liveOn(ns, name, srv.Addr, policy))).To(Succeed())
			engine := client.ObjectKey{Namespace: ns, Name: name + "-engine"}
			g.Eventually(func() error {
				return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-eventlogger"}, &appsv1.Deployment{})
			}, timeout, interval).Should(Succeed())
			markAvailable(g, ns, name+"-eventlogger")
			g.Eventually(func() error { return k8sClient.Get(ctx, engine, &appsv1.Deployment{}) }, timeout, interval).Should(Succeed())
			markAvailable(g, ns, name+"-engine")
			g.Eventually(func(g Gomega) {
				s := getStrategy(g, ns, name)
				g.Expect(s.Status.Phase).To(Equal(stratv1.PhaseRunning))
				g.Expect(kstatusOf(g, s)).To(Equal(kstatus.CurrentStatus))
			}, timeout, interval).Should(Succeed())

			g.Expect(srv.Kill()).To(Succeed())
			// While the logger stays ready (its own view of Redis, as if
			// only the operator's path to Redis broke), the operator's
			// failing probes are a second opinion short: not lost, nothing
			// halted, and RedisReady says why.
			g.Eventually(func(g Gomega) {
				s := getStrategy(g, ns, name)
				c := condition(s, stratv1.ConditionRedisReady)
				g.Expect(c.Status).To(Equal(metav1.ConditionUnknown))
				g.Expect(c.Reason).To(Equal(stratv1.ReasonOperatorCannotReachRedis))
				g.Expect(c.Message).To(ContainSubstring("but the event logger can (1/1 replicas ready"))
				g.Expect(hasEvent(g, ns, name, corev1.EventTypeWarning, stratv1.EventOperatorCannotReachRedis)).To(BeTrue())
			}, timeout, interval).Should(Succeed())
			s := getStrategy(g, ns, name)
			g.Expect(s.Status.Phase).To(Equal(stratv1.PhaseRunning))
			g.Expect(condition(s, stratv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
			d := &appsv1.Deployment{}
			g.Expect(k8sClient.Get(ctx, engine, d)).To(Succeed())
			g.Expect(*d.Spec.Replicas).To(Equal(int32(1)), "nothing is halted on the operator's view alone")
			// The logger's readiness fails too (the kubelet's part, as the
			// logger's /readyz fails in Live without Redis): Redis is lost.
			markUnavailable(g, ns, name+"-eventlogger")
			wantPhase, wantReplicas, wantEvent := stratv1.PhaseHalted, int32(0), "EngineHalted"
			if policy == stratv1.RedisLossAlert {
				wantPhase, wantReplicas, wantEvent = stratv1.PhaseDegraded, 1, stratv1.ReasonRedisLost
			}
			g.Eventually(func(g Gomega) {
				s := getStrategy(g, ns, name)
				g.Expect(s.Status.Phase).To(Equal(wantPhase))
				g.Expect(condition(s, stratv1.ConditionReady).Reason).To(Equal(stratv1.ReasonRedisLost))
				g.Expect(condition(s, stratv1.ConditionReady).Message).To(ContainSubstring("after 3 consecutive failed probe rounds"))
				d := &appsv1.Deployment{}
				g.Expect(k8sClient.Get(ctx, engine, d)).To(Succeed())
				g.Expect(*d.Spec.Replicas).To(Equal(wantReplicas))
				g.Expect(hasEvent(g, ns, name, corev1.EventTypeWarning, stratv1.ReasonRedisLost)).To(BeTrue())
				g.Expect(hasEvent(g, ns, name, corev1.EventTypeWarning, wantEvent)).To(BeTrue())
			}, timeout, interval).Should(Succeed())

			if policy == stratv1.RedisLossHalt {
				// The logger lost Redis too: until it is available again
				// the halted engine stays at zero.
				g.Expect(srv.Restart()).To(Succeed())
				g.Eventually(func(g Gomega) {
					s := getStrategy(g, ns, name)
					redisReady, engineReady := condition(s, stratv1.ConditionRedisReady), condition(s, stratv1.ConditionEngineReady)
					g.Expect(redisReady).NotTo(BeNil())
					g.Expect(engineReady).NotTo(BeNil())
					g.Expect(redisReady.Status).To(Equal(metav1.ConditionTrue))
					g.Expect(engineReady.Reason).To(Equal(stratv1.ReasonWaitingForEventLogger))
				}, timeout, interval).Should(Succeed())
				d := &appsv1.Deployment{}
				g.Expect(k8sClient.Get(ctx, engine, d)).To(Succeed())
				g.Expect(*d.Spec.Replicas).To(Equal(int32(0)), "a halted engine resumes only once its logger listens")
				markAvailable(g, ns, name+"-eventlogger")
			} else {
				g.Expect(srv.Restart()).To(Succeed())
				markAvailable(g, ns, name+"-eventlogger")
			}
			g.Eventually(func(g Gomega) {
				d := &appsv1.Deployment{}
				g.Expect(k8sClient.Get(ctx, engine, d)).To(Succeed())
				g.Expect(*d.Spec.Replicas).To(Equal(int32(1)))
				if *d.Spec.Replicas == 1 && d.Status.ObservedGeneration < d.Generation {
					markAvailable(g, ns, name+"-engine")
				}
				s := getStrategy(g, ns, name)
				g.Expect(s.Status.Phase).To(Equal(stratv1.PhaseRunning))
				var reasons []string
				for _, e := range eventsFor(g, ns, name) {
					reasons = append(reasons, e.Reason+": "+e.Note)
				}
				g.Expect(reasons).To(ContainElement(HavePrefix("RedisRecovered")))
			}, timeout, interval).Should(Succeed())
		})
	}
}

func TestReconcile_BacktestWithoutRedisIsReadyOnMemory(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	s := backtest(ns, "mem")
	s.Spec.Redis = &stratv1.RedisSpec{Address: "127.0.0.1:1", DialTimeout: &metav1.Duration{Duration: 200 * time.Millisecond}}
	g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "mem-eventlogger"}, &appsv1.Deployment{})
	}, timeout, interval).Should(Succeed())
	markAvailable(g, ns, "mem-eventlogger")
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "mem")
		g.Expect(s.Status.Redis.InMemoryFallback).To(BeTrue())
		g.Expect(condition(s, stratv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(s.Status.Phase).To(Equal(stratv1.PhaseRunning))
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "mem-eventlogger"}, d)).To(Succeed())
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			g.Expect(e.Name).NotTo(HavePrefix("STRATOPS_REDIS_"), "the logger is configured for its in-memory bus")
		}
	}, timeout, interval).Should(Succeed())
}

func TestReconcile_ChannelAndKeyHealthInStatus(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	rc := redis.NewClient(&redis.Options{Addr: redisOpen.Addr})
	defer rc.Close()
	s := liveOn(ns, "health", redisOpen.Addr, stratv1.RedisLossHalt)
	s.Spec.Engine = nil
	g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
	p := "health:"
	// The Strategy claims its prefix first (which resets stats it does not
	// own); then the logger's stats.
	g.Eventually(func() int64 { return rc.Exists(ctx, p+"stratops:owner").Val() }, timeout, interval).Should(Equal(int64(1)))
	// position:snapshot without TTL (the memory bloat the standard forbids),
	// risk:current with its TTL, a stats hash with invalid counts, and a
	// subscriber on position:updated only.
	g.Expect(rc.Set(ctx, p+"position:snapshot", `{"timestamp":"2024-05-12T14:00:00Z"}`, 0).Err()).To(Succeed())
	g.Expect(rc.Set(ctx, p+"risk:current", `{"timestamp":"2024-05-12T14:00:00Z"}`, time.Hour).Err()).To(Succeed())
	g.Expect(rc.HSet(ctx, p+"events:channel_stats", "position:updated|messages", 7, "position:updated|invalid", 2).Err()).To(Succeed())
	sub := rc.Subscribe(ctx, p+"position:updated")
	defer sub.Close()
	_, err := sub.Receive(ctx)
	g.Expect(err).NotTo(HaveOccurred())

	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "health")
		keys := map[string]stratv1.KeyStatus{}
		for _, k := range s.Status.Keys {
			keys[k.Name] = k
		}
		g.Expect(keys["position:snapshot"].Reason).To(Equal("NoExpiry"))
		g.Expect(keys["position:snapshot"].Healthy).To(BeFalse())
		g.Expect(keys["risk:current"].Healthy).To(BeTrue())
		g.Expect(*keys["risk:current"].PolicyTTLSeconds).To(Equal(int64(3600)))
		g.Expect(keys["exposure:current"].Reason).To(Equal("Missing"))
		chans := map[string]stratv1.ChannelStatus{}
		for _, c := range s.Status.Channels {
			chans[c.Name] = c
		}
		g.Expect(chans["position:updated"].Subscribers).To(Equal(int64(1)))
		g.Expect(chans["position:updated"].InvalidMessages).To(Equal(int64(2)))
		g.Expect(chans["position:updated"].Messages).To(Equal(int64(7)))
		g.Expect(chans["risk:calculated"].Healthy).To(BeFalse(), "a channel without its subscribers is unhealthy")
		g.Expect(chans["risk:calculated"].Reason).To(Equal("TooFewSubscribers"))
		g.Expect(s.Status.KeysSummary).To(Equal("1/9"))
		kc := condition(s, stratv1.ConditionKeysHealthy)
		g.Expect(kc.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(kc.Message).To(ContainSubstring("position:snapshot (NoExpiry)"))
		g.Expect(condition(s, stratv1.ConditionChannelsHealthy).Message).To(ContainSubstring("risk:calculated"))
	}, timeout, interval).Should(Succeed())
	// Health never flips Ready: the gate passed, the logger is what Ready waits for.
	g.Expect(condition(getStrategy(g, ns, "health"), stratv1.ConditionRedisReady).Status).To(Equal(metav1.ConditionTrue))
}

// TestReconcile_HealthyReconcileCostsAtMostThreeRoundTripsAndNoStatusWrite
// counts the commands Redis served (INFO commandstats) during one reconcile
// of a healthy, rolled-out Strategy between probe rounds.
func TestReconcile_HealthyReconcileCostsAtMostThreeRoundTripsAndNoStatusWrite(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	srv := startRedis(t)
	runningLive(g, ns, "cheap", srv.Addr, betweenRounds)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rc.Close()
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "cheap"}}
	// Let the last write settle, then measure one reconcile.
	g.Eventually(func(g Gomega) {
		before := getStrategy(g, ns, "cheap").ResourceVersion
		_, err := reconciler.Reconcile(ctx, req)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(getStrategy(g, ns, "cheap").ResourceVersion).To(Equal(before))
	}, timeout, interval).Should(Succeed())
	before := getStrategy(g, ns, "cheap").ResourceVersion
	c0, rt0 := commandsServed(ctx, rc), roundTripsTo(srv.Addr)
	_, err := reconciler.Reconcile(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	// commandsServed itself is one command (INFO).
	cmds, trips := commandsServed(ctx, rc)-c0-1, roundTripsTo(srv.Addr)-rt0
	t.Logf("a healthy reconcile: %d Redis round trips, %d commands", trips, cmds)
	g.Expect(getStrategy(g, ns, "cheap").ResourceVersion).To(Equal(before), "no status write")
	g.Expect(trips).To(BeNumerically(">=", 1), "the health read-out runs on every reconcile")
	g.Expect(trips).To(BeNumerically("<=", 3))
	// One pipeline: PUBSUB NUMSUB, HGETALL, the logger's lease (GET), and
	// a PTTL per key (9).
	g.Expect(cmds).To(BeNumerically("<=", 12))
}

// TestReconcile_AReadOutBetweenRoundsOverlapsTheLoggerStepAndIsSettledBeforeTheEngine:
// between probe rounds, a rolled-out Live Strategy's reconcile leaves its
// health read-out in flight while the event logger's step runs (that step
// does the same whatever the read-out finds), and applies what it found
// before the engine's step: the leader it names, and, once Redis is gone,
// a failed check that the verdict counts.
func TestReconcile_AReadOutBetweenRoundsOverlapsTheLoggerStepAndIsSettledBeforeTheEngine(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	srv := startRedis(t)
	runningLive(g, ns, "overlap", srv.Addr, betweenRounds)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rc.Close()
	g.Expect(rc.Set(ctx, eventlog.LeaseKey("overlap:"), "0123abcd|overlap-eventlogger-5d8f-q7k2z", time.Minute).Err()).To(Succeed())

	// The steps up to the verdict, on a Strategy as the cache holds it. A
	// reconcile of the manager's own may hold the check meanwhile: then
	// none starts here, and the steps run again.
	steps := func(g Gomega) *scope {
		s := getStrategy(g, ns, "overlap")
		sc := &scope{strategy: s, base: s.DeepCopy()}
		_, err := reconciler.reconcileSpec(ctx, sc)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = reconciler.reconcileRedis(ctx, sc)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(sc.settle).NotTo(BeNil(), "the read-out is left in flight")
		g.Expect(sc.redisState).To(Equal(lifecycle.RedisOK))
		g.Expect(sc.redis).NotTo(BeNil())
		g.Expect(sc.health).To(BeNil(), "nothing of the read-out is used before it is settled")
		_, err = reconciler.reconcileEventLogger(ctx, sc)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = reconciler.settleRedis(ctx, sc)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(sc.settle).To(BeNil())
		return sc
	}
	nn := types.NamespacedName{Namespace: ns, Name: "overlap"}
	idle := func() bool { c := reconciler.redisChecks().peek(nn); return !c.running && !c.fresh }
	g.Eventually(idle, timeout, interval).Should(BeTrue())
	var sc *scope
	g.Eventually(func(g Gomega) { sc = steps(g) }, timeout, interval).Should(Succeed())
	g.Expect(sc.redisState).To(Equal(lifecycle.RedisOK))
	g.Expect(sc.health).NotTo(BeNil())
	_, err := reconciler.reconcileHealth(ctx, sc)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sc.strategy.Status.EventLogger.Leader).To(Equal("overlap-eventlogger-5d8f-q7k2z"))

	// Redis gone: the read-out fails, and the same reconcile's verdict
	// says so (the logger, still ready, keeps it from being lost).
	g.Expect(srv.Kill()).To(Succeed())
	g.Eventually(idle, timeout, interval).Should(BeTrue())
	sc = steps(g)
	g.Expect(sc.redisState).To(Equal(lifecycle.RedisFailing))
	g.Expect(sc.health).To(BeNil())
	g.Expect(sc.strategy.Status.Redis.ConsecutiveFailures).To(BeNumerically(">=", 1))
	ready := condition(sc.strategy, stratv1.ConditionRedisReady)
	g.Expect(ready.Reason).To(Equal(stratv1.ReasonProbesFailing))
	g.Expect(ready.Message).To(ContainSubstring("health-read-out"))
}

// TestSettleable_OnlyAReadOutOfARolledOutStrategyIsLeftInFlight: the
// event logger's step may run before the verdict only when no verdict
// could change what it does: a read-out (a round may find the prefix
// taken or the logger's commands refused), after a check ended in this
// process, of a Live strategy past its gate or a backtest whose logger
// rolled out with its bus at this generation.
func TestSettleable_OnlyAReadOutOfARolledOutStrategyIsLeftInFlight(t *testing.T) {
	checked := checkSnapshot{checked: true}
	readOut, round := &pendingCheck{}, &pendingCheck{round: true}
	live := lifecycle.RedisFacts{Mode: stratv1.ModeLive, LoggerRolledOut: true}
	backtest := func(bus string) lifecycle.RedisFacts {
		return lifecycle.RedisFacts{Mode: stratv1.ModeBacktest, LoggerRolledOut: true, BacktestBus: bus}
	}
	for _, c := range []struct {
		name  string
		snap  checkSnapshot
		p     *pendingCheck
		facts lifecycle.RedisFacts
		state lifecycle.RedisState
		ok    bool
	}{
		{"a Live read-out past the gate", checked, readOut, live, lifecycle.RedisOK, true},
		{"a probe round", checked, round, live, "", false},
		{"no check ended yet in this process", checkSnapshot{}, readOut, live, "", false},
		{"the prefix held by another Strategy", checkSnapshot{checked: true, conflict: &redisprobe.Owner{Name: "other"}}, readOut, live, "", false},
		{"a Live logger not rolled out (the gate)", checked, readOut, lifecycle.RedisFacts{Mode: stratv1.ModeLive}, "", false},
		{"a backtest on its in-memory bus", checked, readOut, backtest(lifecycle.BusMemory), lifecycle.RedisInMemory, true},
		{"a backtest on Redis", checked, readOut, backtest(lifecycle.BusRedis), lifecycle.RedisOK, true},
		{"a backtest whose logger rolled out at another generation", checked, readOut, backtest(""), "", false},
	} {
		state, ok := settleable(c.snap, c.p, c.facts)
		if state != c.state || ok != c.ok {
			t.Errorf("%s: settleable = %q, %v; want %q, %v", c.name, state, ok, c.state, c.ok)
		}
	}
}

// TestManagerLogs_NeverContainThePassword runs a wrong and a right password
// through the probes and checks every line the manager logged in the tests.
func TestManagerLogs_NeverContainThePassword(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createSecret(t, ns, "bad", "wrong-password-value")
	createSecret(t, ns, "good", testPassword)
	for name, secret := range map[string]string{"logs-bad": "bad", "logs-good": "good"} {
		s := liveOn(ns, name, redisAuth.Addr, stratv1.RedisLossHalt)
		s.Spec.Redis.PasswordSecretRef = &stratv1.SecretKeySelector{Name: secret, Key: "password"}
		g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		g.Expect(getStrategy(g, ns, "logs-bad").Status.Phase).To(Equal(stratv1.PhaseGated))
		g.Expect(getStrategy(g, ns, "logs-good").Status.Phase).To(Equal(stratv1.PhasePending))
	}, timeout, interval).Should(Succeed())
	logs := managerLogs.String()
	g.Expect(logs).To(ContainSubstring("logs-good"), "the manager's logs are captured")
	g.Expect(logs).NotTo(ContainSubstring(testPassword))
	g.Expect(logs).NotTo(ContainSubstring("wrong-password-value"))
}

// TestReconcile_BacktestKeepsTheBusItRolledOutWith: a backtest rolled out on
// Redis keeps its logger on Redis through an outage (the logger queues),
// instead of restarting it on memory and losing what it holds.
func TestReconcile_BacktestKeepsTheBusItRolledOutWith(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	srv := startRedis(t)
	runningLive(g, ns, "sticky", srv.Addr, func(s *stratv1.Strategy) { s.Spec.Mode = stratv1.ModeBacktest })
	key := client.ObjectKey{Namespace: ns, Name: "sticky-eventlogger"}
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
	g.Expect(busOf(d)).To(Equal(lifecycle.BusRedis))
	generation := d.Generation

	g.Expect(srv.Kill()).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "sticky")
		g.Expect(condition(s, stratv1.ConditionRedisReady).Reason).To(Equal(stratv1.ReasonRedisNotReady))
		g.Expect(condition(s, stratv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue), "a backtest does not need Redis")
		g.Expect(s.Status.Redis.InMemoryFallback).To(BeFalse())
	}, timeout, interval).Should(Succeed())
	g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
	g.Expect(d.Generation).To(Equal(generation), "the logger is not rolled to another bus")
}

// TestMetrics_ProbesClientsAndHealthAreExported reads the manager's
// registry after the other tests' Strategies were reconciled.
func TestMetrics_ProbesClientsAndHealthAreExported(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	runningLive(g, ns, "metrics", redisOpen.Addr, nil)
	g.Eventually(func(g Gomega) {
		families, err := metrics.Registry.Gather()
		g.Expect(err).NotTo(HaveOccurred())
		got := map[string]bool{}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["strategy"] == "metrics" || labels["strategy"] == "" {
					got[f.GetName()] = true
				}
			}
		}
		for _, name := range []string{
			"stratops_redis_probe_duration_seconds", "stratops_redis_clients_open",
			"stratops_channel_subscribers", "stratops_key_ttl_seconds", "stratops_healthy", "stratops_total",
			"stratops_channel_healthy", "stratops_key_healthy", "stratops_key_policy_ttl_seconds",
		} {
			g.Expect(got).To(HaveKey(name))
		}
	}, timeout, interval).Should(Succeed())
	g.Expect(testutil.ToFloat64(redisClientsOpen)).To(BeNumerically(">=", 1))
}

// gaugeOf reads one series of the manager's registry: its value, and
// whether it exists.
func gaugeOf(g Gomega, name string, want map[string]string) (float64, bool) {
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestMetrics_PhaseAndConditionsFollowTheStatus: the status series the
// alerts read (phase, conditions, Redis failing since, probe results)
// say what the status says, move with it, and go with the Strategy.
func TestMetrics_PhaseAndConditionsFollowTheStatus(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	srv := startRedis(t)
	runningLive(g, ns, "phases", srv.Addr, nil)
	id := map[string]string{"namespace": ns, "strategy": "phases"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{"namespace": ns, "strategy": "phases"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	g.Eventually(func(g Gomega) {
		v, ok := gaugeOf(g, "stratops_strategy_phase", with("phase", "Running", "mode", "Live"))
		g.Expect(ok).To(BeTrue())
		g.Expect(v).To(Equal(1.0))
		v, ok = gaugeOf(g, "stratops_strategy_phase", with("phase", "Halted"))
		g.Expect(ok).To(BeTrue(), "every phase has a series, 0 when not current")
		g.Expect(v).To(BeZero())
		_, ok = gaugeOf(g, "stratops_strategy_condition", with("type", "Ready", "status", "True"))
		g.Expect(ok).To(BeTrue())
		_, ok = gaugeOf(g, "stratops_strategy_condition", with("type", "Ready", "status", "False"))
		g.Expect(ok).To(BeFalse(), "one series per condition")
		v, _ = gaugeOf(g, "stratops_redis_probe_ok", with("probe", "ping"))
		g.Expect(v).To(Equal(1.0))
		_, ok = gaugeOf(g, "stratops_redis_failing_since_timestamp_seconds", id)
		g.Expect(ok).To(BeFalse())
	}, timeout, interval).Should(Succeed())

	g.Expect(srv.Kill()).To(Succeed())
	markUnavailable(g, ns, "phases-eventlogger") // its readiness fails with Redis
	g.Eventually(func(g Gomega) {
		v, _ := gaugeOf(g, "stratops_strategy_phase", with("phase", "Halted"))
		g.Expect(v).To(Equal(1.0))
		v, _ = gaugeOf(g, "stratops_strategy_phase", with("phase", "Running"))
		g.Expect(v).To(BeZero())
		_, ok := gaugeOf(g, "stratops_strategy_condition", with("type", "Ready", "status", "False", "reason", stratv1.ReasonRedisLost))
		g.Expect(ok).To(BeTrue())
		_, ok = gaugeOf(g, "stratops_strategy_condition", with("type", "Ready", "status", "True"))
		g.Expect(ok).To(BeFalse())
		since, ok := gaugeOf(g, "stratops_redis_failing_since_timestamp_seconds", id)
		g.Expect(ok).To(BeTrue())
		g.Expect(since).To(BeNumerically("~", float64(time.Now().Unix()), 120))
		v, _ = gaugeOf(g, "stratops_redis_probe_ok", with("probe", "ping"))
		g.Expect(v).To(BeZero())
	}, timeout, interval).Should(Succeed())

	g.Expect(k8sClient.Delete(ctx, getStrategy(g, ns, "phases"))).To(Succeed())
	g.Eventually(func(g Gomega) {
		for _, name := range []string{"stratops_strategy_phase", "stratops_strategy_condition", "stratops_redis_probe_ok",
			"stratops_redis_failing_since_timestamp_seconds", "stratops_channel_healthy", "stratops_key_healthy",
			"stratops_channel_subscribers", "stratops_key_ttl_seconds", "stratops_healthy", "stratops_total"} {
			_, ok := gaugeOf(g, name, id)
			g.Expect(ok).To(BeFalse(), "%s outlives its Strategy", name)
		}
	}, timeout, interval).Should(Succeed())
}
