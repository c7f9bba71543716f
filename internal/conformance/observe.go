package conformance

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/pkg/messaging"
)

// observer decodes every message published under the key prefix, as the
// event logger would, and counts what it saw per channel.
type observer struct {
	cat *messaging.Catalog

	mu   sync.Mutex
	seen map[string]*ChannelReport
}

func newObserver(cat *messaging.Catalog) *observer {
	return &observer{cat: cat, seen: map[string]*ChannelReport{}}
}

func (o *observer) channel(name string) *ChannelReport {
	c, ok := o.seen[name]
	if !ok {
		_, inCatalog := o.cat.Channel(name)
		c = &ChannelReport{Name: name, InCatalog: inCatalog, Invalid: map[string]int{}, Nonconforming: map[string]int{}}
		o.seen[name] = c
	}
	return c
}

func (o *observer) read(msgs <-chan *redis.Message) {
	for m := range msgs {
		name := strings.TrimPrefix(m.Channel, o.cat.KeyPrefix)
		if name == messaging.ChannelEventsLogged {
			continue // the event logger's own
		}
		o.mu.Lock()
		o.record(o.channel(name), name, []byte(m.Payload))
		o.mu.Unlock()
	}
}

func (o *observer) record(c *ChannelReport, name string, payload []byte) {
	c.Messages++
	e, err := o.cat.DecodeEvent(name, payload, messaging.DecodeOptions{})
	if err != nil {
		reason := "invalid"
		if ie, ok := err.(*messaging.InvalidError); ok {
			reason = ie.Reason
		}
		c.Invalid[reason]++
		return
	}
	if e.Shape == messaging.ShapeEnvelope {
		c.Envelope++
		if pub := o.cat.Publisher(name); c.InCatalog && e.Component != pub {
			c.wrongComponent = e.Component
		}
	} else {
		c.Flat++
	}
	if e.Nonconforming != "" {
		c.Nonconforming[e.Nonconforming]++
		return
	}
	if naive(payload) {
		c.NaiveTimestamps++
	}
}

// naive says whether a message's timestamp has no zone (read as UTC).
func naive(payload []byte) bool {
	var ts string
	if err := jsonField(payload, "timestamp", &ts); err != nil || len(ts) < 19 {
		return false
	}
	rest := ts[19:]
	return !strings.ContainsAny(rest, "Zz+-")
}

// sampleSubscribers keeps the largest subscriber count each catalog
// channel had beyond the baseline (the event logger's).
func (o *observer) sampleSubscribers(ctx context.Context, rdb *redis.Client, baseline map[string]int64) {
	now, err := numsub(ctx, rdb, o.cat)
	if err != nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for name, n := range now {
		if extra := int(n - baseline[name]); extra > 0 {
			c := o.channel(name)
			c.SubscribersSeen = max(c.SubscribersSeen, extra)
		}
	}
}

// channels are the channel reports, with their faults: every catalog
// channel the component touched (or, for a named component, had to), and
// every channel outside the catalog it published on.
func (o *observer) channels(component string) []ChannelReport {
	o.mu.Lock()
	defer o.mu.Unlock()
	if component != "" {
		for _, c := range o.cat.Channels {
			if c.Publisher == component || contains(c.Subscribers, component) {
				o.channel(c.Name)
			}
		}
	}
	var out []ChannelReport
	for _, name := range sortedKeys(o.seen) {
		c := o.seen[name]
		c.Faults = o.channelFaults(c, component)
		out = append(out, *c)
	}
	return out
}

func (o *observer) channelFaults(c *ChannelReport, component string) []string {
	var faults []string
	if !c.InCatalog {
		return []string{fmt.Sprintf("%d messages on a channel that is not in the catalog", c.Messages)}
	}
	for _, reason := range sortedKeys(c.Invalid) {
		faults = append(faults, fmt.Sprintf("%d invalid (%s): not an event (a JSON object); the logger skips and counts them", c.Invalid[reason], reason))
	}
	for _, reason := range sortedKeys(c.Nonconforming) {
		faults = append(faults, fmt.Sprintf("%d nonconforming (%s): every message needs a timestamp the standard reads", c.Nonconforming[reason], reason))
	}
	if c.wrongComponent != "" {
		faults = append(faults, fmt.Sprintf("envelope says component %q; the catalog's publisher is %q", c.wrongComponent, o.cat.Publisher(c.Name)))
	}
	ch, _ := o.cat.Channel(c.Name)
	if component != "" && ch.Publisher == component && c.Messages == 0 {
		faults = append(faults, "never published: the catalog names "+component+" its publisher")
	}
	if component != "" && contains(ch.Subscribers, component) && c.SubscribersSeen == 0 {
		faults = append(faults, "no subscriber seen: the catalog names "+component+" a subscriber")
	}
	return faults
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// loggerKey says whether a key is the event logger's own (its history,
// its stats, its lease): not the component's to write.
func loggerKey(name string) bool {
	return strings.Contains(name, messaging.KeyEventsHistory) || messaging.Reserved(name) != "" ||
		strings.Contains(name, ":"+messaging.ReservedComponent+":")
}

// judgeKeys reads every key under the prefix that is not the logger's
// and judges its TTL against the catalog's policy, and its value's
// timestamp. ran bounds how long ago a key can have been written.
func judgeKeys(ctx context.Context, rdb *redis.Client, cat *messaging.Catalog, component string, ran time.Duration) ([]KeyReport, error) {
	found := map[string]bool{}
	iter := rdb.Scan(ctx, 0, cat.KeyPrefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		if name := strings.TrimPrefix(iter.Val(), cat.KeyPrefix); !loggerKey(name) {
			found[name] = true
		}
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("conformance: SCAN: %w", err)
	}
	if component != "" {
		for _, k := range cat.Keys {
			if _, ok := found[k.Name]; !ok && k.Writer == component {
				found[k.Name] = false
			}
		}
	}
	var out []KeyReport
	for _, name := range sortedKeys(found) {
		k, err := judgeKey(ctx, rdb, cat, name, found[name], ran)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

func judgeKey(ctx context.Context, rdb *redis.Client, cat *messaging.Catalog, name string, written bool, ran time.Duration) (KeyReport, error) {
	spec, inCatalog := cat.Key(name)
	k := KeyReport{Name: name, InCatalog: inCatalog, Written: written, Policy: "persistent", TTL: -1}
	if inCatalog && !spec.Persistent() {
		k.Policy = spec.TTL.String()
	}
	switch {
	case !inCatalog:
		k.Faults = append(k.Faults, "written, but not in the catalog")
		return k, nil
	case !written:
		k.Faults = append(k.Faults, "never written: the catalog names "+spec.Writer+" its writer")
		return k, nil
	}
	ttl, err := rdb.PTTL(ctx, cat.KeyName(name)).Result()
	if err != nil {
		return k, fmt.Errorf("conformance: PTTL %s: %w", name, err)
	}
	if ttl >= 0 {
		k.TTL = ttl.Round(time.Second)
	}
	k.Faults = append(k.Faults, ttlFaults(spec, ttl, ran)...)
	v, err := rdb.Get(ctx, cat.KeyName(name)).Bytes()
	if err != nil {
		k.Faults = append(k.Faults, "not a string value: "+err.Error())
		return k, nil
	}
	ts, nonconforming, err := messaging.DecodeKeyValue(v, len(v)+1)
	switch {
	case err != nil:
		k.Faults = append(k.Faults, "value is not a JSON object: "+err.Error())
	case nonconforming != "":
		k.Faults = append(k.Faults, "value has no timestamp the standard reads ("+nonconforming+")")
	default:
		k.Timestamp = ts
	}
	return k, nil
}

// ttlFaults judges the TTL Redis has left against the policy: a key
// written during the run has at most its policy's TTL left, and at least
// that less the run.
func ttlFaults(spec messaging.Key, ttl time.Duration, ran time.Duration) []string {
	if spec.Persistent() {
		if ttl >= 0 {
			return []string{fmt.Sprintf("expires in %s; the policy is persistent (no TTL)", ttl.Round(time.Second))}
		}
		return nil
	}
	want := spec.TTL.Duration
	switch {
	case ttl < 0:
		return []string{fmt.Sprintf("no TTL; the policy is %s", want)}
	case ttl > want:
		return []string{fmt.Sprintf("TTL %s is longer than the policy's %s", ttl.Round(time.Second), want)}
	case ttl < want-ran-5*time.Second:
		return []string{fmt.Sprintf("TTL %s left; the policy is %s", ttl.Round(time.Second), want)}
	}
	return nil
}
