//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stratopsv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/pkg/messaging"
	"github.com/stratops/stratops/test/e2e/cluster"
)

// entriesIn is how many entries a Strategy's history holds (0 while Redis does not answer).
func entriesIn(ctx context.Context, c redis.UniversalClient, prefix string) int64 {
	return c.XLen(ctx, prefix+messaging.KeyEventsHistory).Val()
}

// TestLiveOnMutualTLSRedis: a Live strategy on a TLS-only Redis that
// requires client certificates, with the CA and a kubernetes.io/tls Secret:
// the gate opens, the event logger and the engine run on it, and the
// engine's events reach the history.
func TestLiveOnMutualTLSRedis(t *testing.T) {
	timed(t)
	managerLogsOnFailure(t)
	ctx := context.Background()
	ns := namespace(t, "e2e-tls")
	pki, err := redisserver.NewPKI(t.TempDir(), cluster.GatewayIP)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := redisserver.Start(redisserver.Options{Host: cluster.GatewayIP, TLS: pki, TLSClientAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	consent := map[string]string{stratopsv1.CredentialsLabel: "true"}
	for _, sec := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "redis-ca", Labels: consent}, Data: map[string][]byte{"ca.crt": pki.CAPEM}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "redis-client", Labels: consent}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: pki.ClientCertPEM, corev1.TLSPrivateKeyKey: pki.ClientKeyPEM}},
	} {
		if err := k8s.Create(ctx, sec); err != nil {
			t.Fatal(err)
		}
	}
	s := &stratopsv1.Strategy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tls"},
		Spec: stratopsv1.StrategySpec{
			Mode: stratopsv1.ModeLive,
			Redis: &stratopsv1.RedisSpec{Address: srv.Addr, KeyPrefix: "tls:",
				HealthCheckInterval: &metav1.Duration{Duration: 3 * time.Second},
				TLS: &stratopsv1.RedisTLSSpec{Enabled: true,
					CASecretRef:         &stratopsv1.SecretKeySelector{Name: "redis-ca", Key: "ca.crt"},
					ClientCertSecretRef: &stratopsv1.SecretReference{Name: "redis-client"}}},
			Engine: sampleEngine(),
		},
	}
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl("-n", ns, "wait", "--for=condition=Ready", "strategy/tls", "--timeout=180s"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	cfg := messaging.RedisConfig{Addrs: []string{srv.Addr}, TLS: true, CAPEM: pki.CAPEM, ClientCertPEM: pki.ClientCertPEM, ClientKeyPEM: pki.ClientKeyPEM}
	rc, err := messaging.NewRedisClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	eventually(t, 120*time.Second, "the engine's events in the history, over mutual TLS", func() error {
		if n := entriesIn(ctx, rc, "tls:"); n < 10 {
			return fmt.Errorf("%d entries", n)
		}
		return nil
	})
	t.Logf("Ready on mutual TLS; %d events in the history", entriesIn(ctx, rc, "tls:"))
}

// TestLiveOnSentinelSurvivesAFailover: a Live strategy on a master, two
// replicas and three Sentinels (down after 2 s), with lossThreshold 30s.
// The master is SIGKILLed: the strategy is never Halted, its status names
// the promoted master, and the engine's events published after the
// failover are logged.
func TestLiveOnSentinelSurvivesAFailover(t *testing.T) {
	timed(t)
	managerLogsOnFailure(t)
	ctx := context.Background()
	ns := namespace(t, "e2e-sentinel")
	grp, err := redisserver.StartSentinelGroupOn(cluster.GatewayIP, 2, 3, redisserver.MinSentinelDownAfter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(grp.Close)
	s := &stratopsv1.Strategy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sentinel"},
		Spec: stratopsv1.StrategySpec{
			Mode: stratopsv1.ModeLive,
			Redis: &stratopsv1.RedisSpec{Topology: stratopsv1.TopologySentinel, Addresses: grp.SentinelAddrs(),
				SentinelMasterName: redisserver.SentinelMaster, KeyPrefix: "sentinel:",
				HealthCheckInterval: &metav1.Duration{Duration: 2 * time.Second},
				LossThreshold:       &metav1.Duration{Duration: 30 * time.Second}},
			Engine: sampleEngine(),
		},
	}
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl("-n", ns, "wait", "--for=condition=Ready", "strategy/sentinel", "--timeout=180s"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: redisserver.SentinelMaster, SentinelAddrs: grp.SentinelAddrs()})
	defer rc.Close()
	eventually(t, 120*time.Second, "the engine's events in the history", func() error {
		if n := entriesIn(ctx, rc, "sentinel:"); n < 10 {
			return fmt.Errorf("%d entries", n)
		}
		return nil
	})
	oldMaster := grp.Master.Addr
	killed := time.Now()
	if err := grp.Master.Kill(); err != nil {
		t.Fatal(err)
	}
	var following, logging time.Duration
	var before int64
	eventually(t, 120*time.Second, "the status names the promoted master and events are logged on it", func() error {
		got, err := getStrategy(ns, "sentinel")
		if err != nil {
			return err
		}
		if got.Status.Phase == stratopsv1.PhaseHalted {
			t.Fatalf("Halted %s after the master was killed, within the loss threshold: %+v", time.Since(killed), condition(got, stratopsv1.ConditionRedisReady))
		}
		ep := ""
		if got.Status.Redis != nil {
			ep = got.Status.Redis.Endpoint
		}
		if following == 0 && ep != "" && len(ep) > len(oldMaster) && ep[:len(oldMaster)] != oldMaster {
			following = time.Since(killed)
		}
		n := entriesIn(ctx, rc, "sentinel:")
		if before == 0 && n > 0 {
			before = n
		}
		if logging == 0 && before > 0 && n > before+5 {
			logging = time.Since(killed)
		}
		if following == 0 || logging == 0 {
			return fmt.Errorf("endpoint %q, history %d (was %d)", ep, n, before)
		}
		return nil
	})
	got, err := getStrategy(ns, "sentinel")
	if err != nil {
		t.Fatal(err)
	}
	if c := condition(got, stratopsv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("not Ready after the failover: %+v", c)
	}
	timings["sentinel: status names the new master"] = following
	timings["sentinel: events logged on the new master"] = logging
	t.Logf("master SIGKILLed: status named the promoted master %s later, the history grew again %s later; never Halted (endpoint %s)",
		following.Round(100*time.Millisecond), logging.Round(100*time.Millisecond), got.Status.Redis.Endpoint)
}
