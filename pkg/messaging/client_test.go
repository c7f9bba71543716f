package messaging

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestClient_OnRedisAppliesTheCatalogsNamesTTLsAndShapes(t *testing.T) {
	ctx := t.Context()
	prefix := prefixFor(t)
	c, err := Connect(ctx, Config{Mode: ModeLive, KeyPrefix: prefix, Redis: RedisConfig{Addrs: []string{redisServer.Addr}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	raw := newClient(t, redisServer.Addr)

	got := make(chan Event, 4)
	if _, err := c.Subscribe(ctx, func(_ context.Context, e Event) { got <- e }, "position:updated"); err != nil {
		t.Fatal(err)
	}
	// What a Python component publishes, and what this client publishes.
	raw.Publish(ctx, prefix+"position:updated", `{"timestamp": "2024-05-12T14:00:00.5", "trigger": "GAS_FEE_PAID"}`)
	raw.Publish(ctx, prefix+"position:updated", `not json`)
	if err := c.PublishState(ctx, "position:updated", map[string]any{"trigger": "TICK"}, "position:snapshot", json.RawMessage(`{"wallet":{}}`)); err != nil {
		t.Fatal(err)
	}
	flat, env := <-got, <-got
	if flat.Shape != ShapeFlat || flat.Component != "position_monitor" || !flat.Timestamp.Equal(may12.Add(500*time.Millisecond)) {
		t.Fatalf("the flat payload arrived as %+v", flat)
	}
	if env.Shape != ShapeEnvelope || env.Component != "position_monitor" || env.Event != "updated" || string(env.Metadata) != `{"trigger":"TICK"}` {
		t.Fatalf("the envelope arrived as %+v", env)
	}
	if c.Skipped() != 1 {
		t.Fatalf("skipped %d, want the one message that is not JSON", c.Skipped())
	}
	ttl := raw.TTL(ctx, prefix+"position:snapshot").Val()
	if ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("position:snapshot TTL %v, want the catalog's 1h", ttl)
	}
	if err := c.SetState(ctx, "config:strategy", map[string]any{"name": "eth-basis"}); err != nil {
		t.Fatal(err)
	}
	if ttl := raw.TTL(ctx, prefix+"config:strategy").Val(); ttl != -1 {
		t.Fatalf("config:strategy TTL %v, want none (persistent)", ttl)
	}
	st, err := c.State(ctx, "position:snapshot")
	if err != nil || !strings.HasPrefix(string(st.Value), `{"timestamp":"`) || st.Timestamp.IsZero() {
		t.Fatalf("state %s (%v): the value must carry the timestamp the client stamped", st.Value, err)
	}
	for _, err := range []error{
		c.Publish(ctx, "nope:nope", nil),
		c.SetState(ctx, "nope:nope", nil),
		c.SetState(ctx, KeyEventsHistory, map[string]any{}),
	} {
		if err == nil {
			t.Error("a name outside the catalog, or the logger's history, was written")
		}
	}
	if _, err := c.Subscribe(ctx, func(context.Context, Event) {}, "nope:nope"); err == nil {
		t.Error("subscribed to a channel outside the catalog")
	}
}

func TestClient_PublishStateIsOneRoundTrip(t *testing.T) {
	ctx := t.Context()
	cat := Standard(ModeLive)
	cat.KeyPrefix = prefixFor(t)
	var calls int
	rc := newClient(t, redisServer.Addr) // connected: the handshake is not counted
	rc.AddHook(countHook{&calls})
	c := &Client{cat: cat, bus: NewRedisBus(rc, RedisBusOptions{KeyPrefix: cat.KeyPrefix})}
	if err := c.PublishState(ctx, "risk:calculated", map[string]any{"overall_status": "WARNING"}, "risk:current", map[string]any{"alerts": []string{}}); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("%d round trips, want 1", calls)
	}
}

// TestClient_ForwarderRetriesUntilTheLoggerTakesTheEvents: a backtest's
// events reach the logger in order even when it answers 503 at first, and
// Close waits for them.
func TestClient_ForwarderRetriesUntilTheLoggerTakesTheEvents(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	var refused int
	logger := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if refused < 2 {
			refused++
			http.Error(w, "queue full", http.StatusServiceUnavailable)
			return
		}
		var batch []json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for range batch {
			bodies = append(bodies, r.URL.Query().Get("channel"))
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer logger.Close()
	ctx := t.Context()
	c, err := Connect(ctx, Config{Mode: ModeBacktest, EventLoggerURL: logger.URL}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{}
	for i := range 50 {
		ch := []string{"position:updated", "exposure:calculated"}[i%3/2]
		want = append(want, ch)
		if err := c.Publish(ctx, ch, map[string]int{"seq": i}); err != nil {
			t.Fatal(err)
		}
	}
	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(bodies, ",") != strings.Join(want, ",") {
		t.Fatalf("the logger got channels\n%v\nwant, in order,\n%v", bodies, want)
	}
}
