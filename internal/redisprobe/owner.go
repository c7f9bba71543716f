package redisprobe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/pkg/messaging"
)

// ProbeOwner is the name of the round's last step: the claim on the prefix.
const ProbeOwner = "owner"

// OwnerKey is the key (after the Strategy's prefix) that says which
// Strategy owns the prefix.
const OwnerKey = messaging.ReservedComponent + ":owner"

// Owner is who holds a prefix: a Strategy, by UID, namespace and name.
type Owner struct {
	UID       string `json:"uid"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (o Owner) String() string { return o.Namespace + "/" + o.Name + " (uid " + o.UID + ")" }

// ClaimPrefix claims the prefix for me (SET NX with a TTL), or renews my
// claim; ok is false when another Strategy holds it, and that is the holder.
// A new claim resets the channel stats hash when it counts another owner's
// traffic, and marks it as mine.
func ClaimPrefix(ctx context.Context, c redis.UniversalClient, prefix string, me Owner, ttl time.Duration) (holder Owner, ok bool, err error) {
	key := prefix + OwnerKey
	val, _ := json.Marshal(me)
	claimed, err := c.SetNX(ctx, key, val, ttl).Result()
	if err != nil {
		return Owner{}, false, fmt.Errorf("SET %s NX: %w", key, err)
	}
	if !claimed {
		cur, err := c.Get(ctx, key).Result()
		if errors.Is(err, redis.Nil) {
			// Lapsed between the two commands: the next round claims it.
			return me, true, nil
		}
		if err != nil {
			return Owner{}, false, fmt.Errorf("GET %s: %w", key, err)
		}
		if err := json.Unmarshal([]byte(cur), &holder); err != nil || holder.UID == "" {
			holder = Owner{Name: cur}
		}
		if holder.UID != me.UID {
			return holder, false, nil
		}
		if err := c.Expire(ctx, key, ttl).Err(); err != nil {
			return Owner{}, false, fmt.Errorf("EXPIRE %s: %w", key, err)
		}
		return me, true, nil
	}
	stats := prefix + messaging.KeyChannelStats
	owner, err := c.HGet(ctx, stats, eventlog.StatsOwnerField).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Owner{}, false, fmt.Errorf("HGET %s: %w", stats, err)
	}
	if owner != me.UID {
		// Counters of another owner (or of before owners were recorded)
		// would hide this one's silence.
		if _, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, stats)
			p.HSet(ctx, stats, eventlog.StatsOwnerField, me.UID)
			p.Expire(ctx, stats, messaging.HistoryTTL)
			return nil
		}); err != nil {
			return Owner{}, false, fmt.Errorf("resetting %s for its new owner: %w", stats, err)
		}
	}
	return me, true, nil
}
