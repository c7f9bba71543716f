//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	stratopsv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/test/e2e/cluster"
)

// previousRelease is the release the upgrade scenario starts from: the
// newest commit whose VERSION is a release other than the tree's own
// (hack/e2e/previous-release.sh builds its dist/). TestMain installs it,
// with a Live Strategy and its engine on it, before it installs the
// release under test over it.
type previousRelease struct {
	dist, version string

	// What ran under the previous release.
	redis        *redisserver.Server
	engine       types.UID
	loggerImages []string
}

const upgradeNS, upgradeName = "e2e-upgrade", "upgrade"

func previousFromEnv() *previousRelease {
	dir, v := os.Getenv("STRATOPS_E2E_PREVIOUS_DIST"), os.Getenv("STRATOPS_E2E_PREVIOUS_VERSION")
	if dir == "" || v == "" {
		return nil
	}
	return &previousRelease{dist: dir, version: v}
}

func (p *previousRelease) archive() string {
	return filepath.Join(p.dist, "stratops-"+p.version+".oci.tar")
}

// install applies the previous release's stratops.yaml and runs a Live
// Strategy with an engine on it, until Ready.
func (p *previousRelease) install() error {
	if err := installManifest(filepath.Join(p.dist, "stratops.yaml")); err != nil {
		return err
	}
	var err error
	if p.redis, err = redisserver.Start(redisserver.Options{Host: cluster.GatewayIP, Persist: true}); err != nil {
		return err
	}
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: upgradeNS, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
	}}}
	if err := k8s.Create(ctx, ns); err != nil {
		return err
	}
	s := &stratopsv1.Strategy{
		ObjectMeta: metav1.ObjectMeta{Namespace: upgradeNS, Name: upgradeName},
		Spec: stratopsv1.StrategySpec{
			Mode:   stratopsv1.ModeLive,
			Redis:  &stratopsv1.RedisSpec{Address: p.redis.Addr, KeyPrefix: upgradeName + ":", HealthCheckInterval: &metav1.Duration{Duration: 3 * time.Second}},
			Engine: sampleEngine(),
		},
	}
	if err := k8s.Create(ctx, s); err != nil {
		return err
	}
	if out, err := kubectl("-n", upgradeNS, "wait", "--for=condition=Ready", "strategy/"+upgradeName, "--timeout=180s"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for p.engine, err = oneEnginePod(upgradeNS, upgradeName); err != nil; p.engine, err = oneEnginePod(upgradeNS, upgradeName) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the engine pod under %s: %w", p.version, err)
		}
		time.Sleep(time.Second)
	}
	p.loggerImages, err = loggerImages(upgradeNS, upgradeName)
	return err
}

func loggerImages(ns, name string) ([]string, error) {
	pods, err := strategyPods(ns, name, "event-logger")
	if err != nil {
		return nil, err
	}
	var images []string
	for _, pod := range pods {
		if pod.DeletionTimestamp == nil {
			images = append(images, pod.Spec.Containers[0].Image)
		}
	}
	return images, nil
}

// TestUpgrade_FromThePreviousRelease: stratops.yaml of the release under
// test, applied over the previous release with a Live Strategy running,
// does what the CHANGELOG says an upgrade does: the manager runs the new
// image, the event logger rolls to it, the engine is not restarted, the
// Strategy stays (or is again) Ready under the new manager, and no event
// is written twice.
func TestUpgrade_FromThePreviousRelease(t *testing.T) {
	timed(t)
	if previous == nil {
		t.Skipf("no previous release to upgrade from: %s", os.Getenv("STRATOPS_E2E_NO_PREVIOUS"))
	}
	managerLogsOnFailure(t)
	t.Cleanup(func() {
		_ = k8s.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: upgradeNS}})
		previous.redis.Close()
	})
	t.Logf("upgraded from %s (loggers ran %v) to %s", previous.version, previous.loggerImages, version)
	for _, img := range previous.loggerImages {
		if img != "stratops:"+previous.version {
			t.Fatalf("under %s the logger ran %s, not that release's image", previous.version, img)
		}
	}
	d, err := deployment(operatorNS, managerApp)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != image {
		t.Fatalf("after the upgrade the manager runs %s, want %s", got, image)
	}
	eventually(t, 3*time.Minute, "the logger rolls to "+image+" and the Strategy is Ready", func() error {
		images, err := loggerImages(upgradeNS, upgradeName)
		if err != nil {
			return err
		}
		if len(images) == 0 || slices.ContainsFunc(images, func(img string) bool { return img != image }) {
			return fmt.Errorf("logger pods run %v", images)
		}
		pods, err := strategyPods(upgradeNS, upgradeName, "event-logger")
		if err != nil {
			return err
		}
		if err := runningReady(pods, len(images)); err != nil {
			return err
		}
		s, err := getStrategy(upgradeNS, upgradeName)
		if err != nil {
			return err
		}
		if c := condition(s, "Ready"); c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != s.Generation {
			return fmt.Errorf("Ready is %v", c)
		}
		return nil
	})
	if uid, err := oneEnginePod(upgradeNS, upgradeName); err != nil || uid != previous.engine {
		t.Fatalf("after the upgrade the engine pod is %s (was %s): %v; the CHANGELOG says engines are not restarted", uid, previous.engine, err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: previous.redis.Addr})
	defer func() { _ = rdb.Close() }()
	eventually(t, 30*time.Second, "the new logger writes the engine's events", func() error {
		before, err := rdb.XLen(context.Background(), upgradeName+":events:history").Result()
		if err != nil {
			return err
		}
		time.Sleep(3 * time.Second)
		after, err := rdb.XLen(context.Background(), upgradeName+":events:history").Result()
		if err != nil || after <= before {
			return fmt.Errorf("history length %d then %d: %v", before, after, err)
		}
		return nil
	})
	byMsg, byID, err := history(context.Background(), rdb, upgradeName+":")
	if err != nil {
		t.Fatal(err)
	}
	for id, n := range byID {
		if n > 1 {
			t.Errorf("event %s is in the history %d times across the upgrade", id, n)
		}
	}
	t.Logf("history across the upgrade: %d events, none twice", len(byMsg))
}
