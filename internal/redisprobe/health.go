package redisprobe

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/pkg/messaging"
)

// Reasons a channel or key is unhealthy.
const (
	ReasonTooFewSubscribers = "TooFewSubscribers"
	ReasonSilent            = "Silent"
	ReasonMissing           = "Missing"
	ReasonNoExpiry          = "NoExpiry"
	ReasonTTLExceedsPolicy  = "TTLExceedsPolicy"
	ReasonStale             = "Stale"
	ReasonInvalidValue      = "InvalidValue"
	ReasonInvalidMessages   = "InvalidMessages"
	ReasonLagging           = "Lagging"
)

// ChannelHealth is what Redis and the event logger's stats say of a channel.
type ChannelHealth struct {
	Name            string
	Subscribers     int64
	Messages        int64
	Invalid         int64
	Nonconforming   int64
	Dropped         int64
	Gaps            int64
	LastGapTime     time.Time
	LastMessageTime time.Time
	// Window is what the channel did over the logger's health window;
	// WindowOK is false when no logger reported a current one.
	Window   eventlog.WindowStats
	WindowOK bool
	Healthy  bool
	Reason   string
}

// KeyHealth is what Redis says of a key.
type KeyHealth struct {
	Name    string
	Present bool
	// TTL remaining; negative when the key has none.
	TTL time.Duration
	// PolicyTTL is the catalog's; zero for a persistent key.
	PolicyTTL time.Duration
	Healthy   bool
	Reason    string
}

// Health is the read-out of a strategy's channels and keys.
type Health struct {
	Channels []ChannelHealth
	Keys     []KeyHealth
	// LoggerLeader is the event logger replica that holds the lease (the
	// pod's name); empty when none does.
	LoggerLeader string
}

// ReadHealth reads every channel's subscribers (summed over all nodes of a
// cluster), the event logger's stats hash, and every key's TTL (and, where
// the catalog sets maxAge, its value's timestamp), in one pipeline: one
// round trip on a standalone server.
func ReadHealth(ctx context.Context, c redis.UniversalClient, cat messaging.Catalog, now time.Time) (Health, error) {
	chNames := make([]string, len(cat.Channels))
	for i, ch := range cat.Channels {
		chNames[i] = cat.ChannelName(ch.Name)
	}
	var (
		numsub *redis.MapStringIntCmd
		stats  *redis.MapStringStringCmd
		lease  *redis.StringCmd
		ttls   = make([]*redis.DurationCmd, len(cat.Keys))
		gets   = make([]*redis.StringCmd, len(cat.Keys))
	)
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		if _, cluster := c.(*redis.ClusterClient); !cluster && len(chNames) > 0 {
			numsub = p.PubSubNumSub(ctx, chNames...)
		}
		stats = p.HGetAll(ctx, cat.KeyName(messaging.KeyChannelStats))
		lease = p.Get(ctx, eventlog.LeaseKey(cat.KeyPrefix))
		for i, k := range cat.Keys {
			ttls[i] = p.PTTL(ctx, cat.KeyName(k.Name))
			if k.MaxAge.Duration > 0 && k.Name != messaging.KeyEventsHistory {
				gets[i] = p.Get(ctx, cat.KeyName(k.Name))
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Health{}, fmt.Errorf("redisprobe: reading channel and key health: %w", err)
	}
	subs := map[string]int64{}
	if numsub != nil {
		subs = numsub.Val()
	} else if cc, ok := c.(*redis.ClusterClient); ok && len(chNames) > 0 {
		if subs, err = clusterNumSub(ctx, cc, chNames); err != nil {
			return Health{}, err
		}
	}
	st := eventlog.ParseStats(stats.Val())

	h := Health{Channels: make([]ChannelHealth, 0, len(cat.Channels)), Keys: make([]KeyHealth, 0, len(cat.Keys))}
	h.LoggerLeader = eventlog.LeaseHolderName(lease.Val())
	for i, pol := range cat.Channels {
		s := st.Channels[pol.Name]
		ch := ChannelHealth{Name: pol.Name, Subscribers: subs[chNames[i]], Messages: s.Messages, Invalid: s.Invalid,
			Nonconforming: s.Nonconforming, Dropped: s.Dropped, Gaps: s.Gaps, LastGapTime: s.LastGapTime,
			LastMessageTime: s.LastMessageTime, Healthy: true}
		ch.Window, ch.WindowOK = st.Window(pol.Name, now)
		ch.Healthy, ch.Reason = channelVerdict(pol, ch, now)
		h.Channels = append(h.Channels, ch)
	}
	for i, k := range cat.Keys {
		kh := KeyHealth{Name: k.Name, PolicyTTL: k.TTL.Duration, Healthy: true}
		ttl := ttls[i].Val()
		switch ttl {
		case -2: // PTTL: -2 for a missing key, -1 for no expiry
			kh.Present, kh.Healthy, kh.Reason = false, false, ReasonMissing
		default:
			kh.Present = true
			kh.TTL = ttl
			if ttl < 0 {
				kh.TTL = -1
			}
			switch {
			case !k.Persistent() && ttl < 0:
				kh.Healthy, kh.Reason = false, ReasonNoExpiry
			case !k.Persistent() && ttl > k.TTL.Duration:
				kh.Healthy, kh.Reason = false, ReasonTTLExceedsPolicy
			case gets[i] != nil:
				v, err := gets[i].Bytes()
				if err != nil {
					break // expired between PTTL and GET
				}
				ts, nonconforming, err := messaging.DecodeKeyValue(v, 0)
				switch {
				case err != nil || nonconforming != "":
					kh.Healthy, kh.Reason = false, ReasonInvalidValue
				case now.Sub(ts) > k.MaxAge.Duration:
					kh.Healthy, kh.Reason = false, ReasonStale
				}
			}
		}
		h.Keys = append(h.Keys, kh)
	}
	return h, nil
}

// channelVerdict says whether a channel meets its policy, and why not.
func channelVerdict(pol messaging.Channel, ch ChannelHealth, now time.Time) (bool, string) {
	switch {
	case ch.Subscribers < int64(pol.MinSubscribers):
		return false, ReasonTooFewSubscribers
	case pol.MaxSilence.Duration > 0 && (ch.LastMessageTime.IsZero() || now.Sub(ch.LastMessageTime) > pol.MaxSilence.Duration):
		return false, ReasonSilent
	case ch.WindowOK && ch.Window.Invalid > 0 && ch.Window.InvalidRatio() > pol.InvalidRatioLimit():
		return false, ReasonInvalidMessages
	case ch.WindowOK && pol.MaxLag.Duration > 0 && ch.Window.LagSamples > 0 && ch.Window.LagP99 > pol.MaxLag.Duration:
		return false, ReasonLagging
	}
	return true, ""
}

// clusterNumSub sums PUBSUB NUMSUB over every node: a message published in
// a cluster reaches subscribers on every node, but each node counts only
// its own.
func clusterNumSub(ctx context.Context, c *redis.ClusterClient, channels []string) (map[string]int64, error) {
	var mu sync.Mutex
	total := map[string]int64{}
	err := c.ForEachShard(ctx, func(ctx context.Context, node *redis.Client) error {
		n, err := node.PubSubNumSub(ctx, channels...).Result()
		if err != nil {
			return err
		}
		mu.Lock()
		for ch, v := range n {
			total[ch] += v
		}
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisprobe: PUBSUB NUMSUB across the cluster: %w", err)
	}
	return total, nil
}
