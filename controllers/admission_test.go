package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// TestAdmission_RejectsInvalidStrategiesNamingTheField applies each invalid
// Strategy to the real API server and checks that the CRD's validation
// (OpenAPI and CEL) rejects it with a message that names the field.
func TestAdmission_RejectsInvalidStrategiesNamingTheField(t *testing.T) {
	ns := newNamespace(t)
	dur := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	redis := func(mut func(r *stratv1.RedisSpec)) *stratv1.RedisSpec {
		r := &stratv1.RedisSpec{Address: "127.0.0.1:1"}
		mut(r)
		return r
	}
	cases := []struct {
		name    string
		mutate  func(s *stratv1.Strategy)
		message string
	}{
		{"live without redis", func(s *stratv1.Strategy) { s.Spec.Mode = stratv1.ModeLive }, "spec.redis is required when spec.mode is Live"},
		{"unknown mode", func(s *stratv1.Strategy) { s.Spec.Mode = "Paper" }, "spec.mode"},
		{"channel name without component", func(s *stratv1.Strategy) {
			s.Spec.Messaging = &stratv1.MessagingSpec{Channels: []stratv1.ChannelSpec{{Name: "updated"}}}
		}, "spec.messaging.channels[0].name"},
		{"channel name with upper case", func(s *stratv1.Strategy) {
			s.Spec.Messaging = &stratv1.MessagingSpec{Channels: []stratv1.ChannelSpec{{Name: "Position:updated"}}}
		}, "spec.messaging.channels[0].name"},
		{"key name with a dash", func(s *stratv1.Strategy) {
			s.Spec.Messaging = &stratv1.MessagingSpec{Keys: []stratv1.KeySpec{{Name: "position:snap-shot"}}}
		}, "spec.messaging.keys[0].name"},
		{"sentinel without master name", func(s *stratv1.Strategy) {
			s.Spec.Redis = redis(func(r *stratv1.RedisSpec) {
				r.Topology = stratv1.TopologySentinel
				r.Addresses = []string{"127.0.0.1:2"}
			})
		}, "spec.redis.sentinelMasterName"},
		{"sentinel without addresses", func(s *stratv1.Strategy) {
			s.Spec.Redis = redis(func(r *stratv1.RedisSpec) {
				r.Topology = stratv1.TopologySentinel
				r.SentinelMasterName = "mymaster"
			})
		}, "spec.redis.addresses"},
		{"cluster without addresses", func(s *stratv1.Strategy) {
			s.Spec.Redis = redis(func(r *stratv1.RedisSpec) { r.Topology = stratv1.TopologyCluster })
		}, "spec.redis.addresses"},
		{"cluster with a db", func(s *stratv1.Strategy) {
			s.Spec.Redis = redis(func(r *stratv1.RedisSpec) {
				r.Topology = stratv1.TopologyCluster
				r.Addresses = []string{"127.0.0.1:3"}
				r.DB = 3
			})
		}, "spec.redis.db"},
		{"db above 15", func(s *stratv1.Strategy) {
			s.Spec.Redis = redis(func(r *stratv1.RedisSpec) { r.DB = 16 })
		}, "spec.redis.db"},
		{"negative db", func(s *stratv1.Strategy) {
			s.Spec.Redis = redis(func(r *stratv1.RedisSpec) { r.DB = -1 })
		}, "spec.redis.db"},
		{"standalone without address", func(s *stratv1.Strategy) {
			s.Spec.Redis = redis(func(r *stratv1.RedisSpec) { r.Address = "" })
		}, "spec.redis.address"},
		{"key prefix with whitespace", func(s *stratv1.Strategy) {
			s.Spec.Redis = redis(func(r *stratv1.RedisSpec) { r.KeyPrefix = "eth basis:" })
		}, "spec.redis.keyPrefix"},
		{"zero dial timeout", func(s *stratv1.Strategy) {
			s.Spec.Redis = redis(func(r *stratv1.RedisSpec) { r.DialTimeout = dur(0) })
		}, "spec.redis.dialTimeout"},
		{"a dial timeout over 10s, which would hold a worker", func(s *stratv1.Strategy) {
			s.Spec.Redis = redis(func(r *stratv1.RedisSpec) { r.DialTimeout = dur(11 * time.Second) })
		}, "spec.redis.dialTimeout: Invalid value: \"11s\": spec.redis.dialTimeout must be a positive duration of at most 10s"},
		{"a health check interval under 1s, which would hot-loop probes", func(s *stratv1.Strategy) {
			s.Spec.Redis = redis(func(r *stratv1.RedisSpec) { r.HealthCheckInterval = dur(time.Nanosecond) })
		}, "spec.redis.healthCheckInterval must be between 1s and 1h"},
		{"a health check interval over 1h", func(s *stratv1.Strategy) {
			s.Spec.Redis = redis(func(r *stratv1.RedisSpec) { r.HealthCheckInterval = dur(2 * time.Hour) })
		}, "spec.redis.healthCheckInterval must be between 1s and 1h"},
		{"negative health check interval", func(s *stratv1.Strategy) {
			s.Spec.Redis = redis(func(r *stratv1.RedisSpec) { r.HealthCheckInterval = dur(-time.Second) })
		}, "spec.redis.healthCheckInterval"},
		{"negative key ttl", func(s *stratv1.Strategy) {
			s.Spec.Messaging = &stratv1.MessagingSpec{Keys: []stratv1.KeySpec{{Name: "position:snapshot", TTL: dur(-time.Hour)}}}
		}, "spec.messaging.keys[0].ttl"},
		{"a key ttl under one second, which would become no TTL", func(s *stratv1.Strategy) {
			s.Spec.Messaging = &stratv1.MessagingSpec{Keys: []stratv1.KeySpec{{Name: "position:snapshot", TTL: dur(500 * time.Millisecond)}}}
		}, "spec.messaging.keys[0].ttl: Invalid value: \"500ms\": ttl must be at least 1s"},
		{"a channel of the operator's reserved component", func(s *stratv1.Strategy) {
			s.Spec.Messaging = &stratv1.MessagingSpec{Channels: []stratv1.ChannelSpec{{Name: "stratops:probe"}}}
		}, "spec.messaging.channels[0].name: Invalid value: \"stratops:probe\": channel name: the stratops: component is reserved"},
		{"a key of the operator's reserved component", func(s *stratv1.Strategy) {
			s.Spec.Messaging = &stratv1.MessagingSpec{Keys: []stratv1.KeySpec{{Name: "stratops:probe"}}}
		}, "spec.messaging.keys[0].name"},
		{"the logger's stats hash as a key", func(s *stratv1.Strategy) {
			s.Spec.Messaging = &stratv1.MessagingSpec{Keys: []stratv1.KeySpec{{Name: "events:channel_stats"}}}
		}, "spec.messaging.keys[0].name: Invalid value: \"events:channel_stats\": key name: the stratops: component and events:channel_stats are reserved"},
		{"an invalid ratio above one", func(s *stratv1.Strategy) {
			s.Spec.Messaging = &stratv1.MessagingSpec{Channels: []stratv1.ChannelSpec{{Name: "position:updated", MaxInvalidRatio: new(1.5)}}}
		}, "spec.messaging.channels[0].maxInvalidRatio"},
		{"a zero max lag", func(s *stratv1.Strategy) {
			s.Spec.Messaging = &stratv1.MessagingSpec{Channels: []stratv1.ChannelSpec{{Name: "position:updated", MaxLag: dur(0)}}}
		}, "spec.messaging.channels[0].maxLag"},
		{"zero max silence", func(s *stratv1.Strategy) {
			s.Spec.Messaging = &stratv1.MessagingSpec{Channels: []stratv1.ChannelSpec{{Name: "position:updated", MaxSilence: dur(0)}}}
		}, "spec.messaging.channels[0].maxSilence"},
		{"insecureSkipVerify without tls", func(s *stratv1.Strategy) {
			s.Spec.Redis = redis(func(r *stratv1.RedisSpec) { r.TLS = &stratv1.RedisTLSSpec{InsecureSkipVerify: true} })
		}, "spec.redis.tls.insecureSkipVerify"},
		{"name too long for the Service", func(s *stratv1.Strategy) {
			s.Name = "a-strategy-name-that-is-far-too-long-to-name-a-service-x"
		}, "metadata.name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			s := backtest(ns, "invalid")
			tc.mutate(s)
			err := k8sClient.Create(context.Background(), s)
			g.Expect(err).To(HaveOccurred())
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want 422 Invalid, got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.message))
		})
	}

	t.Run("a valid strategy of each topology is accepted", func(t *testing.T) {
		g := NewWithT(t)
		for i, r := range []*stratv1.RedisSpec{
			{Address: "127.0.0.1:1", KeyPrefix: "eth-basis:", DB: 15},
			{Topology: stratv1.TopologySentinel, Addresses: []string{"127.0.0.1:2"}, SentinelMasterName: "mymaster"},
			{Topology: stratv1.TopologyCluster, Addresses: []string{"127.0.0.1:3", "127.0.0.1:4"}},
		} {
			s := backtest(ns, []string{"standalone", "sentinel", "cluster"}[i])
			s.Spec.Mode = stratv1.ModeLive
			s.Spec.Redis = r
			g.Expect(k8sClient.Create(context.Background(), s)).To(Succeed())
			got := getStrategy(g, ns, s.Name)
			g.Expect(got.Spec.RedisLossPolicy).To(Equal(stratv1.RedisLossHalt), "default redisLossPolicy")
			g.Expect(got.Spec.Redis.DialTimeout.Duration).To(Equal(2*time.Second), "default dialTimeout")
			g.Expect(got.Spec.Redis.HealthCheckInterval.Duration).To(Equal(30*time.Second), "default healthCheckInterval")
			g.Expect(*got.Spec.EventLogger.Replicas).To(Equal(int32(1)), "default eventLogger.replicas")
			g.Expect(got.Spec.EventLogger.LogLevel).To(Equal(stratv1.LogLevel("info")), "default eventLogger.logLevel")
		}
	})
}
