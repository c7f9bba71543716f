package eventlogger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/pkg/messaging"
)

// syncBuffer collects the logger's event lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type running struct {
	svc  *Service
	http *httptest.Server
	out  *syncBuffer
	stop func()
}

// logBus is a bus with the event log kept where it is, as the logger
// binary pairs them: Redis with Redis, memory with memory.
type logBus interface {
	messaging.Bus
	eventlog.Store
}

type redisLog struct {
	*messaging.RedisBus
	*eventlog.RedisStore
}

func newRedisLog(c redis.UniversalClient, prefix string) redisLog {
	return redisLog{messaging.NewRedisBus(c, messaging.RedisBusOptions{KeyPrefix: prefix}),
		eventlog.NewRedisStore(c, eventlog.RedisStoreOptions{KeyPrefix: prefix})}
}

type memoryLog struct {
	*messaging.MemoryBus
	*eventlog.MemoryStore
}

func newMemoryLog() memoryLog {
	b := messaging.NewMemoryBus(nil)
	return memoryLog{b, eventlog.NewMemoryStore(b, nil)}
}

// startService runs a Service and its HTTP API until the test ends.
func startService(t *testing.T, bus logBus, cfg ServiceConfig) *running {
	t.Helper()
	out := &syncBuffer{}
	cfg.Out = out
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.StatsInterval == 0 {
		cfg.StatsInterval = 100 * time.Millisecond
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = 100 * time.Millisecond
	}
	svc := NewService(cfg, bus, bus)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !svc.ready.subscribed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("service did not subscribe within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	srv := httptest.NewServer(svc.Handler())
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.Close()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &running{svc: svc, http: srv, out: out, stop: stop}
}

func liveCatalog(t testing.TB) messaging.Catalog {
	c := messaging.Standard(messaging.ModeLive)
	c.KeyPrefix = prefixFor(t)
	return c
}

func event(i int) []byte {
	b, _ := messaging.Envelope(time.Now(), "position_monitor", "updated", map[string]any{"seq": i})
	return b
}

// seqOf reads the sequence number event(i) put in an entry.
func seqOf(e eventlog.LogEntry) int {
	var md struct{ Seq int }
	if err := e.Event.Decode(&md); err != nil {
		return -1
	}
	return md.Seq
}

func do(t *testing.T, method, url string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestService_EveryCatalogKeyItWritesCarriesTheCatalogTTL(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, redisServer.Addr)
	cat := liveCatalog(t)
	r := startService(t, newRedisLog(c, cat.KeyPrefix), ServiceConfig{Catalog: cat})

	if code, body := do(t, "POST", r.http.URL+"/events?channel=position:updated", event(1)); code != http.StatusAccepted {
		t.Fatalf("POST /events: %d %s", code, body)
	}
	for _, k := range cat.Keys {
		if k.Name != messaging.KeyEventsHistory {
			if code, body := do(t, "PUT", r.http.URL+"/state/"+k.Name, []byte(`{"timestamp":"2024-05-12T14:00:00Z","v":1}`)); code != http.StatusNoContent {
				t.Fatalf("PUT %s: %d %s", k.Name, code, body)
			}
		}
	}
	eventually(t, "events:history exists", func() bool { return c.Exists(ctx, cat.KeyName(messaging.KeyEventsHistory)).Val() == 1 })
	for _, k := range cat.Keys {
		ttl := c.TTL(ctx, cat.KeyName(k.Name)).Val()
		if k.Persistent() {
			if ttl != -1 {
				t.Errorf("%s: TTL %v, want none (persistent)", k.Name, ttl)
			}
			continue
		}
		if ttl <= k.TTL.Duration-5*time.Second || ttl > k.TTL.Duration {
			t.Errorf("%s: TTL %v, want the policy's %v", k.Name, ttl, k.TTL.Duration)
		}
	}
}

func TestService_InvalidMessagesAreSkippedAndCountedPerChannelAndTheLoggerKeepsGoing(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, redisServer.Addr)
	cat := liveCatalog(t)
	bus := newRedisLog(c, cat.KeyPrefix)
	r := startService(t, bus, ServiceConfig{Catalog: cat, MaxMessageBytes: 256})

	pub := func(ch string, payload []byte) {
		if err := c.Publish(ctx, cat.ChannelName(ch), payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	pub("position:updated", []byte(`{"timestamp": "2024-05-12T14:00:00Z", "compo`))
	pub("risk:calculated", []byte(`["not", "an", "object"]`))
	pub("pnl:calculated", []byte(`{"timestamp":"2024-05-12T14:00:00Z","component":"pnl_calculator","event":"calculated","metadata":{"pad":"`+strings.Repeat("x", 300)+`"}}`))
	pub("position:updated", event(42))

	eventually(t, "the valid message is in events:history", func() bool {
		h, _, _ := bus.History(ctx, 10, "")
		return len(h) == 1 && seqOf(h[0]) == 42 && h[0].Channel == "position:updated"
	})
	eventually(t, "the stats hash counts the invalid messages per channel", func() bool {
		st := eventlog.ParseStats(c.HGetAll(ctx, cat.KeyName(messaging.KeyChannelStats)).Val()).Channels
		return st["position:updated"].Invalid == 1 && st["position:updated"].Messages == 1 &&
			st["risk:calculated"].Invalid == 1 && st["pnl:calculated"].Invalid == 1 &&
			!st["position:updated"].LastMessageTime.IsZero()
	})
	_, metrics := do(t, "GET", r.http.URL+"/metrics", nil)
	for _, want := range []string{
		`stratops_eventlogger_invalid_messages_total{channel="position:updated",reason="invalid_json"} 1`,
		`stratops_eventlogger_invalid_messages_total{channel="risk:calculated",reason="not_object"} 1`,
		`stratops_eventlogger_invalid_messages_total{channel="pnl:calculated",reason="too_large"} 1`,
		`stratops_eventlogger_messages_total{channel="position:updated"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if lines := strings.Count(r.out.String(), "\n"); lines != 1 {
		t.Fatalf("%d event lines on stdout, want 1 (only the valid message)", lines)
	}
}

// TestService_RedisKilledAndRestartedWhileIngestingLosesAndDuplicatesNothing
// ingests numbered events over HTTP while Redis is killed and restarted:
// afterwards events:history holds every one, in order, once.
func TestService_RedisKilledAndRestartedWhileIngestingLosesAndDuplicatesNothing(t *testing.T) {
	ctx := context.Background()
	srv, err := redisserver.Start(redisserver.Options{Persist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// As the logger's client is (messaging.RedisConfig): a command is
	// never resent by the client, whose resend of a write that landed
	// would write it twice; the writer's retry checks the history first.
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
	defer c.Close()
	cat := liveCatalog(t)
	bus := newRedisLog(c, cat.KeyPrefix)
	retry := &countingRetry{inner: Retry()}
	r := startService(t, bus, ServiceConfig{Catalog: cat, BatchSize: 16, Retry: func() backoff.BackOff { return retry }})

	const total = 300
	post := func(i int) {
		if code, body := do(t, "POST", r.http.URL+"/events?channel=position:updated", event(i)); code != http.StatusAccepted {
			t.Fatalf("event %d: %d %s", i, code, body)
		}
	}
	for i := range 100 {
		post(i)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "/readyz fails while Redis is down (Live)", func() bool {
		code, _ := do(t, "GET", r.http.URL+"/readyz", nil)
		return code == http.StatusServiceUnavailable
	})
	for i := 100; i < 200; i++ {
		post(i)
	}
	if r.svc.Pending() == 0 {
		t.Fatal("events posted while Redis is down should wait in the queue")
	}
	eventually(t, "the writer retried three times", func() bool { d, _ := retry.counts(); return d >= 3 })
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	for i := 200; i < total; i++ {
		post(i)
	}
	eventually(t, "the queue is flushed", func() bool { return r.svc.Pending() == 0 })
	eventually(t, "/readyz passes again", func() bool {
		code, _ := do(t, "GET", r.http.URL+"/readyz", nil)
		return code == http.StatusOK
	})
	h, _, err := bus.History(ctx, 10*total, "")
	if err != nil {
		t.Fatal(err)
	}
	// The subscription's own gap while Redis was down is in the history
	// too, as an event of the pseudo-channel "gap": not a posted event.
	h = slices.DeleteFunc(h, func(e eventlog.LogEntry) bool { return e.Channel == ChannelGap })
	if len(h) != total {
		t.Fatalf("events:history holds %d posted events, want %d", len(h), total)
	}
	for i, e := range h {
		if seqOf(e) != i {
			t.Fatalf("history[%d] is event %v: out of order, lost or duplicated", i, seqOf(e))
		}
	}
	// The writer waited what the policy drew, within its jitter band, and
	// started the policy afresh once the history took its writes again.
	retry.mu.Lock()
	defer retry.mu.Unlock()
	jittered := false
	for i, d := range retry.draws {
		n := nominal(retry.places[i])
		if d < n/2 || d > n*3/2 {
			t.Fatalf("retry %d waited %s, outside the policy's band around %s", i, d, n)
		}
		jittered = jittered || d != n
	}
	if !jittered || retry.resets < 1 {
		t.Fatalf("draws %v, resets %d: want jittered draws and a reset after the recovery", retry.draws, retry.resets)
	}
}

func TestHTTP_StateAndEventsHappyAndErrorPaths(t *testing.T) {
	c := newClient(t, redisServer.Addr)
	cat := liveCatalog(t)
	r := startService(t, newRedisLog(c, cat.KeyPrefix), ServiceConfig{Catalog: cat, MaxMessageBytes: 1024})
	url := r.http.URL

	cases := []struct {
		name, method, path, body string
		code                     int
		contains                 string
	}{
		{"unknown key", "GET", "/state/nope:nope", "", 404, "unknown key"},
		{"key never set", "GET", "/state/risk:current", "", 404, "has no value"},
		{"put a value that is not an object", "PUT", "/state/risk:current", `[1]`, 400, "not_object"},
		{"put a value without timestamp", "PUT", "/state/risk:current", `{"a":1}`, 400, "missing_timestamp"},
		{"put a value with a Python timestamp", "PUT", "/state/pnl:current", `{"timestamp":"2024-05-12T14:00:00.123456","pnl":1}`, 204, ""},
		{"put a valid value", "PUT", "/state/risk:current", `{"timestamp":"2024-05-12T14:00:00Z","overall_status":"WARNING"}`, 204, ""},
		{"get it back with its TTL", "GET", "/state/risk:current", "", 200, `"overall_status":"WARNING"`},
		{"post one event", "POST", "/events?channel=position:updated", string(event(1)), 202, `"accepted":1`},
		{"post a batch", "POST", "/events", "[" + string(event(2)) + "," + string(event(3)) + "]", 202, `"accepted":2`},
		{"a batch with a bad event is refused whole", "POST", "/events", "[" + string(event(4)) + `,[1]]`, 400, "event 1"},
		{"not JSON", "POST", "/events", `hello`, 400, "invalid_json"},
		{"unknown channel", "POST", "/events?channel=foo:bar", string(event(5)), 400, "unknown channel"},
		{"too large", "POST", "/events", `{"timestamp":"2024-05-12T14:00:00Z","component":"a","event":"b","metadata":{"x":"` + strings.Repeat("y", 2000) + `"}}`, 413, "too_large"},
		{"history is read-only", "PUT", "/state/events:history", `{"timestamp":"2024-05-12T14:00:00Z"}`, 405, ""},
	}
	for _, tc := range cases {
		code, body := do(t, tc.method, url+tc.path, []byte(tc.body))
		if code != tc.code || !strings.Contains(body, tc.contains) {
			t.Errorf("%s: %s %s = %d %s; want %d with %q", tc.name, tc.method, tc.path, code, body, tc.code, tc.contains)
		}
	}
	var st stateResponse
	_, body := do(t, "GET", url+"/state/risk:current", nil)
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.TTLSeconds <= 3590 || st.TTLSeconds > 3600 {
		t.Errorf("risk:current TTL %d (%v), want about 3600", st.TTLSeconds, err)
	}
	eventually(t, "the history holds the 3 accepted events", func() bool {
		code, body := do(t, "GET", url+"/state/events:history", nil)
		return code == 200 && strings.Count(body, `"id"`) == 3
	})
}

func TestService_QueueOverflowIsRefusedCountedAndExposed(t *testing.T) {
	srv, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: 0, DialTimeout: 100 * time.Millisecond})
	defer c.Close()
	cat := liveCatalog(t)
	r := startService(t, newRedisLog(c, cat.KeyPrefix), ServiceConfig{Catalog: cat, PendingLimit: 2})
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if code, body := do(t, "POST", r.http.URL+"/events", event(i)); code != http.StatusAccepted {
			t.Fatalf("event %d: %d %s", i, code, body)
		}
	}
	code, body := do(t, "POST", r.http.URL+"/events", event(3))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "queue is full") {
		t.Fatalf("overflow: %d %s, want 503 saying the queue is full", code, body)
	}
	_, metrics := do(t, "GET", r.http.URL+"/metrics", nil)
	if !strings.Contains(metrics, "stratops_eventlogger_queue_overflow_total 1") ||
		!strings.Contains(metrics, "stratops_eventlogger_pending_events 2") {
		t.Fatalf("overflow not exposed in metrics:\n%s", grep(metrics, "stratops_eventlogger_"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return fmt.Sprint(out)
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestService_LogsBothShapesAsTheyCameAndCountsNonconformingApart: flat
// payloads of the standard's components, with Python's timestamps, reach
// events:history and the log line byte for byte; one without a timestamp
// is logged and counted as nonconforming, not invalid; the window in the
// stats hash carries the lag the logger saw.
func TestService_LogsBothShapesAsTheyCameAndCountsNonconformingApart(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, redisServer.Addr)
	cat := liveCatalog(t)
	bus := newRedisLog(c, cat.KeyPrefix)
	r := startService(t, bus, ServiceConfig{Catalog: cat})
	naive := time.Now().UTC().Add(-2 * time.Second).Format("2006-01-02T15:04:05.000000")
	payloads := []struct{ channel, payload string }{
		{"position:updated", `{"timestamp": "` + naive + `", "trigger": "GAS_FEE_PAID"}`},
		{"exposure:calculated", `{"timestamp": "` + naive + `+00:00", "net_delta_eth": -5.12, "wei": 123456789012345678901234}`},
		{"pnl:calculated", `{"pnl_cumulative": 1238.45}`},
	}
	for _, p := range payloads {
		if err := c.Publish(ctx, cat.ChannelName(p.channel), p.payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var h []eventlog.LogEntry
	eventually(t, "the three events are in events:history", func() bool {
		h, _, _ = bus.History(ctx, 10, "")
		return len(h) == 3
	})
	for i, e := range h {
		if string(e.Event.Payload) != payloads[i].payload || e.Event.Shape != messaging.ShapeFlat || e.Event.Component != cat.Publisher(payloads[i].channel) {
			t.Errorf("history[%d] = %+v, want %s as it came", i, e.Event, payloads[i].payload)
		}
		if !strings.Contains(r.out.String(), `"message":`+strings.ReplaceAll(payloads[i].payload, " ", "")) {
			t.Errorf("the log line of %s does not carry its payload", payloads[i].channel)
		}
	}
	if h[2].Event.Nonconforming != messaging.ReasonMissingTimestamp || h[0].Event.Nonconforming != "" {
		t.Fatalf("nonconforming: %q %q", h[0].Event.Nonconforming, h[2].Event.Nonconforming)
	}
	eventually(t, "the stats hash counts the nonconforming event and the window's lag", func() bool {
		st := eventlog.ParseStats(c.HGetAll(ctx, cat.KeyName(messaging.KeyChannelStats)).Val())
		w, ok := st.Window("position:updated", time.Now())
		return st.Channels["pnl:calculated"].Nonconforming == 1 && st.Channels["pnl:calculated"].Invalid == 0 &&
			st.Channels["position:updated"].Nonconforming == 0 && ok && w.LagSamples == 1 && w.LagP50 >= 2*time.Second
	})
	_, metrics := do(t, "GET", r.http.URL+"/metrics", nil)
	for _, want := range []string{
		`stratops_eventlogger_nonconforming_messages_total{channel="pnl:calculated",reason="missing_timestamp"} 1`,
		`stratops_eventlogger_event_lag_seconds_count{channel="position:updated"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
