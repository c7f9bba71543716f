package messaging

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestStandard_PubSubRoundTrip is the standard's own pub/sub test, on a
// real redis-server: subscribe (and wait for the confirmation), publish,
// receive the JSON back.
func TestStandard_PubSubRoundTrip(t *testing.T) {
	ctx := context.Background()
	bus := NewRedisBus(newClient(t, redisServer.Addr), RedisBusOptions{KeyPrefix: prefixFor(t)})
	sub, err := bus.Subscribe(ctx, "position:updated")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := bus.Publish(ctx, "position:updated", []byte(`{"test": true}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-sub.C():
		var v map[string]bool
		if err := json.Unmarshal(d.Payload, &v); err != nil || !v["test"] || d.Channel != "position:updated" {
			t.Fatalf("received %+v (%v)", d, err)
		}
	case <-time.After(time.Second):
		t.Fatal("no message within 1s")
	}
}

// TestStandard_KeyWithOneSecondTTLIsGoneAfterTwo is the standard's own TTL
// test.
func TestStandard_KeyWithOneSecondTTLIsGoneAfterTwo(t *testing.T) {
	ctx := context.Background()
	bus := NewRedisBus(newClient(t, redisServer.Addr), RedisBusOptions{KeyPrefix: prefixFor(t)})
	if err := bus.Set(ctx, "test:data", []byte("value"), time.Second); err != nil {
		t.Fatal(err)
	}
	if v, _, err := bus.Get(ctx, "test:data"); err != nil || string(v) != "value" {
		t.Fatalf("immediately: %q, %v", v, err)
	}
	time.Sleep(2 * time.Second)
	if _, _, err := bus.Get(ctx, "test:data"); err != ErrKeyNotFound {
		t.Fatalf("after 2s: %v, want ErrKeyNotFound", err)
	}
}

func TestRedisBus_PublishStateSetsTheKeyWithItsTTLInOneRoundTrip(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, redisServer.Addr)
	prefix := prefixFor(t)
	bus := NewRedisBus(c, RedisBusOptions{KeyPrefix: prefix})
	var calls int
	c.AddHook(countHook{&calls})
	msg, _ := Envelope(time.Now(), "position_monitor", "updated", nil)
	if err := bus.PublishState(ctx, "position:updated", msg, "position:snapshot", []byte(`{"timestamp":"2024-05-12T14:00:00Z"}`), time.Hour); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("%d round trips, want 1", calls)
	}
	ttl := c.TTL(ctx, prefix+"position:snapshot").Val()
	if ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("TTL %v, want about 1h", ttl)
	}
}

// countHook counts round trips of work: a command or a pipeline each. The
// handshake of a new connection (HELLO, CLIENT SETINFO) is not work and is
// not counted.
type countHook struct{ n *int }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "hello" {
			*h.n++
		}
		return next(ctx, cmd)
	}
}
func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && cmds[0].Name() != "client" {
			*h.n++
		}
		return next(ctx, cmds)
	}
}
