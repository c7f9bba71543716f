package controllers

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	. "github.com/onsi/gomega"

	stratv1 "github.com/stratops/stratops/api/v1"
)

func commandsServed(ctx context.Context, rc *redis.Client) int64 {
	for _, l := range strings.Split(rc.Info(ctx, "stats").Val(), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "total_commands_processed:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// BenchmarkReconcile_HealthyStrategy is the cost of one reconcile of a
// healthy, rolled-out Live Strategy between probe rounds: time, allocations
// and the Redis commands it sends (all in one pipeline).
func BenchmarkReconcile_HealthyStrategy(b *testing.B) {
	g := NewWithT(b)
	ctx := context.Background()
	ns := newNamespace(&testing.T{})
	runningLive(g, ns, "bench", redisOpen.Addr, betweenRounds)
	rc := redis.NewClient(&redis.Options{Addr: redisOpen.Addr})
	defer rc.Close()
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "bench"}}
	_, _ = reconciler.Reconcile(ctx, req)

	c0 := commandsServed(ctx, rc)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reconciler.Reconcile(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	cmds := commandsServed(ctx, rc) - c0 - 1
	b.ReportMetric(float64(cmds)/float64(b.N), "redis-cmds/op")
}

// BenchmarkReady_200StrategiesSharingOneRedis is the time from creating
// 200 Live Strategies that share one Redis to all of them Ready, the test
// playing the kubelet (marking each event logger available as it appears).
// Run it with -benchtime=1x.
func BenchmarkReady_200StrategiesSharingOneRedis(b *testing.B) {
	const n = 200
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		ns := newNamespace(&testing.T{})
		b.StartTimer()
		start := time.Now()
		for i := range n {
			s := liveOn(ns, fmt.Sprintf("s%03d", i), redisOpen.Addr, stratv1.RedisLossHalt)
			s.Spec.Engine = nil
			if err := k8sClient.Create(ctx, s); err != nil {
				b.Fatal(err)
			}
		}
		marked := map[string]bool{}
		var mu sync.Mutex
		deadline := time.Now().Add(5 * time.Minute)
		for {
			var list appsv1.DeploymentList
			if err := k8sClient.List(ctx, &list, client.InNamespace(ns)); err != nil {
				b.Fatal(err)
			}
			for _, d := range list.Items {
				mu.Lock()
				if !marked[d.Name] {
					markAvailable(NewWithT(b), ns, d.Name)
					marked[d.Name] = true
				}
				mu.Unlock()
			}
			var strategies stratv1.StrategyList
			if err := k8sClient.List(ctx, &strategies, client.InNamespace(ns)); err != nil {
				b.Fatal(err)
			}
			ready := 0
			for i := range strategies.Items {
				if c := condition(&strategies.Items[i], stratv1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue {
					ready++
				}
			}
			if ready == n {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("only %d/%d Ready after 5 minutes", ready, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s-to-all-ready")
		b.ReportMetric(float64(reconciler.Clients.Open()), "redis-clients")
	}
}
