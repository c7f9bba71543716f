package eventlogger

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/pkg/messaging"
)

func rec(id string) spoolRecord {
	return spoolRecord{ID: id, Channel: "position:updated", LoggedAt: time.Now().UTC(), Payload: []byte(`{"id":"` + id + `"}`)}
}

func TestSpool_ReopenReplaysWhatWasNotAckedAndCutsATornTail(t *testing.T) {
	dir := t.TempDir()
	sp, replay, err := OpenSpool(dir, 1<<20)
	if err != nil || len(replay) != 0 {
		t.Fatalf("a new spool: %v, %d to replay", err, len(replay))
	}
	var recs []spoolRecord
	for i := range 10 {
		recs = append(recs, rec(string(rune('a'+i))))
	}
	last, err := sp.Append(recs)
	if err != nil || last != 10 {
		t.Fatalf("Append: last %d, %v", last, err)
	}
	if err := sp.Sync(last); err != nil {
		t.Fatal(err)
	}
	if err := sp.Ack(4); err != nil {
		t.Fatal(err)
	}
	// A crash: the file is not closed, and half a frame follows the last
	// whole one.
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	f, err := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write([]byte{200, 0, 0, 0, 1, 2})
	_ = f.Close()

	sp2, replay, err := OpenSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range replay {
		ids = append(ids, r.ID)
		if !bytes.Equal(r.Payload, []byte(`{"id":"`+r.ID+`"}`)) || r.Channel != "position:updated" {
			t.Fatalf("record %s came back as %+v", r.ID, r)
		}
	}
	if got := strings.Join(ids, ""); got != "efghij" {
		t.Fatalf("replayed %q, want the records after the ack, efghij", got)
	}
	// Appends after the cut tail are read back in order.
	last, err = sp2.Append([]spoolRecord{rec("k")})
	if err != nil || last != 11 {
		t.Fatalf("append after reopen: %d %v", last, err)
	}
	got, err := sp2.ReadFrom(5, 100)
	if err != nil {
		t.Fatal(err)
	}
	ids = ids[:0]
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, "") != "efghijk" {
		t.Fatalf("ReadFrom(5) = %q", strings.Join(ids, ""))
	}
}

// TestSpool_SyncOfRecordsTheHistoryHasCostsNoFsync: a published
// message's record waits a few milliseconds for its fsync, and by then
// the history usually has it (acked): that sync is skipped, the spool's
// synced mark not moved. Records the history lacks are synced.
func TestSpool_SyncOfRecordsTheHistoryHasCostsNoFsync(t *testing.T) {
	sp, _, err := OpenSpool(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	last, err := sp.Append([]spoolRecord{rec("a"), rec("b"), rec("c")})
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Ack(last); err != nil {
		t.Fatal(err)
	}
	if err := sp.Sync(last); err != nil {
		t.Fatal(err)
	}
	if got := sp.synced.Load(); got != 0 {
		t.Fatalf("records the history has were fsynced (synced mark %d); want no fsync", got)
	}
	if last, err = sp.Append([]spoolRecord{rec("d"), rec("e")}); err != nil {
		t.Fatal(err)
	}
	if err := sp.Sync(last); err != nil {
		t.Fatal(err)
	}
	if got := sp.synced.Load(); got != last {
		t.Fatalf("records the history lacks: synced mark %d after Sync(%d); want them fsynced", got, last)
	}
}

// runSpooled runs svc, with a spool of size bytes in a directory of the
// test's, until the returned function stops it, once it has subscribed.
func runSpooled(t *testing.T, svc *Service, size int64) (stop func()) {
	t.Helper()
	if err := svc.UseSpool(t.TempDir(), size); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Run(ctx) }()
	eventually(t, "subscribed", func() bool { return svc.ready.subscribed.Load() })
	return func() { cancel(); <-done }
}

// refusingStore is a memory event log whose history refuses every write
// (Redis down, say): nothing is acked in the spool.
type refusingStore struct{ *eventlog.MemoryStore }

func (refusingStore) Record(context.Context, []eventlog.LogEntry) error {
	return errors.New("refused: the history is down")
}

// TestSpool_APublishedMessageTheHistoryLacksIsFsyncedUnasked: the fsync
// a published message's record waits for (5 ms) is skipped only when the
// history has it; while the history refuses, the records are fsynced
// without anyone asking (no API request waits on them).
func TestSpool_APublishedMessageTheHistoryLacksIsFsyncedUnasked(t *testing.T) {
	ctx := context.Background()
	cat := messaging.Standard(messaging.ModeBacktest)
	mem := newMemoryLog()
	svc := NewService(ServiceConfig{Catalog: cat, Out: &syncBuffer{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		StatsInterval: 50 * time.Millisecond, PingInterval: 50 * time.Millisecond, DrainTimeout: 100 * time.Millisecond}, mem.MemoryBus, refusingStore{mem.MemoryStore})
	defer runSpooled(t, svc, 1<<20)()
	for i := range 3 {
		if err := mem.Publish(ctx, cat.ChannelName("position:updated"), event(i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the three records fsynced, none acked", func() bool {
		return svc.queue.added() == 3 && svc.queue.spool.synced.Load() == 3
	})
	if svc.Pending() != 3 {
		t.Fatalf("%d events pending; want the 3 the history refused", svc.Pending())
	}
}

func TestSpool_FullRefusesWholeBatchesAndAckFreesRoom(t *testing.T) {
	sp, _, err := OpenSpool(t.TempDir(), 4096)
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for {
		last, err := sp.Append([]spoolRecord{rec("x"), rec("y")})
		if err == ErrSpoolFull {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n = last
	}
	if sp.Bytes() > 4096 {
		t.Fatalf("the spool holds %d bytes, over its room of 4096", sp.Bytes())
	}
	if err := sp.Ack(n); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Append([]spoolRecord{rec("z")}); err != nil {
		t.Fatalf("after every record was acked the spool still refuses: %v (bytes %d)", err, sp.Bytes())
	}
}

// loggedCounter counts the events:logged notifications by entry id.
func loggedCounter(t *testing.T, c *redis.Client, cat messaging.Catalog) func() map[string]int {
	ps := c.Subscribe(context.Background(), cat.ChannelName(messaging.ChannelEventsLogged))
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	go func() {
		for m := range ps.Channel() {
			e, err := cat.DecodeEvent(messaging.ChannelEventsLogged, []byte(m.Payload), messaging.DecodeOptions{})
			if err != nil {
				continue
			}
			var md struct{ ID string }
			_ = e.Decode(&md)
			mu.Lock()
			seen[md.ID]++
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = ps.Close() })
	return func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]int{}
		for k, v := range seen {
			out[k] = v
		}
		return out
	}
}

func historyIDs(t *testing.T, c *redis.Client, cat messaging.Catalog) map[string]int {
	return historyIDsOn(t, c, cat, "")
}

// historyIDsOn is historyIDs of the entries of one channel ("": all).
func historyIDsOn(t *testing.T, c *redis.Client, cat messaging.Catalog, channel string) map[string]int {
	msgs, err := c.XRange(context.Background(), cat.KeyName(messaging.KeyEventsHistory), "-", "+").Result()
	if err != nil && err != redis.Nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, m := range msgs {
		if ch, _ := m.Values["channel"].(string); channel != "" && ch != channel {
			continue
		}
		id, _ := m.Values["id"].(string)
		out[id]++
	}
	return out
}

func readyReason(svc *Service) string {
	ok, msg := svc.Ready()
	if ok {
		return ""
	}
	return msg
}

func TestWrite_WrongTypeFailsReadinessNamingTheCommandAndNotifiesNothingUntilTheHistoryHasIt(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, redisServer.Addr)
	cat := liveCatalog(t)
	hist := cat.KeyName(messaging.KeyEventsHistory)
	// Someone wrote events:history as a string.
	if err := c.Set(ctx, hist, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	logged := loggedCounter(t, c, cat)
	r := startService(t, newRedisLog(c, cat.KeyPrefix), ServiceConfig{Catalog: cat})
	for i := range 20 {
		if err := c.Publish(ctx, cat.ChannelName("position:updated"), event(i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the logger is not ready, saying RedisWrongType and the command", func() bool {
		return strings.Contains(readyReason(r.svc), "RedisWrongType") && strings.Contains(readyReason(r.svc), "XADD events:history")
	})
	_, metrics := do(t, "GET", r.http.URL+"/metrics", nil)
	if !strings.Contains(metrics, `stratops_eventlogger_write_failing{reason="RedisWrongType"} 1`) {
		t.Error("metrics do not show the failing write")
	}
	time.Sleep(500 * time.Millisecond) // retries happen meanwhile
	if n := len(logged()); n != 0 {
		t.Fatalf("%d events:logged notifications while the history refused every entry; want none", n)
	}
	// Fixed in Redis: every event lands once, with one notification each.
	if err := c.Del(ctx, hist).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the history has the 20 events and the logger is ready", func() bool {
		return len(historyIDs(t, c, cat)) == 20 && readyReason(r.svc) == ""
	})
	eventually(t, "one notification for each", func() bool { return len(logged()) == 20 })
	for id, n := range historyIDs(t, c, cat) {
		if n != 1 || logged()[id] != 1 {
			t.Fatalf("entry %s: %d times in the history, %d notifications; want 1 and 1", id, n, logged()[id])
		}
	}
}

func TestWrite_NoPermAndOutOfMemoryFailReadinessWithTheirReasons(t *testing.T) {
	ctx := context.Background()
	srv, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	admin := newClient(t, srv.Addr)
	cat := liveCatalog(t)

	t.Run("an ACL without XADD", func(t *testing.T) {
		// What the README listed before: SET, PUBLISH, SUBSCRIBE, and
		// enough to read, but no XADD.
		if err := admin.Do(ctx, "ACL", "SETUSER", "narrow", "on", ">pw", "resetkeys", "~*", "resetchannels", "&*",
			"-@all", "+set", "+get", "+publish", "+subscribe", "+ping", "+expire", "+hincrby", "+hset", "+hget", "+xrevrange", "+exec", "+multi", "+pttl",
			"+evalsha", "+eval", "+pexpire", "+del").Err(); err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "narrow", Password: "pw", MaxRetries: -1})
		defer c.Close()
		r := startService(t, newRedisLog(c, cat.KeyPrefix), ServiceConfig{Catalog: cat})
		if _, err := r.svc.Accept("position:updated", []messaging.Event{decoded(t, cat, 1)}, time.Now()); err != nil {
			t.Fatal(err)
		}
		eventually(t, "not ready with RedisPermissionDenied naming xadd", func() bool {
			m := readyReason(r.svc)
			return strings.HasPrefix(m, "RedisPermissionDenied") && strings.Contains(strings.ToLower(m), "xadd")
		})
		if r.svc.Pending() != 1 {
			t.Fatalf("the refused event is not kept for a retry: pending %d", r.svc.Pending())
		}
	})
	t.Run("maxmemory with noeviction", func(t *testing.T) {
		if err := admin.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
			t.Fatal(err)
		}
		// Fill Redis past a limit set just above what it uses.
		if err := admin.Set(ctx, "ballast", strings.Repeat("x", 2<<20), 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := admin.ConfigSet(ctx, "maxmemory", "1mb").Err(); err != nil {
			t.Fatal(err)
		}
		defer admin.ConfigSet(ctx, "maxmemory", "0")
		c := newClient(t, srv.Addr)
		r := startService(t, newRedisLog(c, cat.KeyPrefix+"oom:"), ServiceConfig{Catalog: cat})
		if _, err := r.svc.Accept("position:updated", []messaging.Event{decoded(t, cat, 1)}, time.Now()); err != nil {
			t.Fatal(err)
		}
		eventually(t, "not ready with RedisOutOfMemory", func() bool {
			return strings.HasPrefix(readyReason(r.svc), "RedisOutOfMemory")
		})
		_ = admin.Del(ctx, "ballast")
		_ = admin.ConfigSet(ctx, "maxmemory", "0")
		eventually(t, "ready again once Redis has room, the event written", func() bool {
			return readyReason(r.svc) == "" && r.svc.Pending() == 0
		})
	})
}

func decoded(t *testing.T, cat messaging.Catalog, i int) messaging.Event {
	e, err := cat.DecodeEvent("position:updated", event(i), messaging.DecodeOptions{Received: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// cutProxy relays a Redis connection and, once armed, forwards the next
// write of the history (the script that writes it, or an EXEC) to the
// server and closes the connection before its reply: the client cannot
// know whether it ran.
type cutProxy struct {
	ln    net.Listener
	armed atomic.Bool
	cuts  atomic.Int32
}

func (p *cutProxy) isRecord(b []byte) bool {
	l := bytes.ToLower(b)
	return bytes.Contains(l, []byte("\r\nexec\r\n")) ||
		bytes.Contains(l, []byte("evalsha")) && bytes.Contains(l, []byte("logged_at"))
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			cc, err := ln.Accept()
			if err != nil {
				return
			}
			sc, err := net.Dial("tcp", target)
			if err != nil {
				_ = cc.Close()
				continue
			}
			cut := make(chan struct{})
			var once, cutOnce sync.Once
			stopReplies := func() { cutOnce.Do(func() { close(cut) }) }
			closeBoth := func() { once.Do(func() { stopReplies(); _ = cc.Close(); _ = sc.Close() }) }
			go func() { // client → server
				buf := make([]byte, 64<<10)
				cutting := false
				for {
					n, err := cc.Read(buf)
					if n > 0 {
						if !cutting && p.isRecord(buf[:n]) && p.armed.CompareAndSwap(true, false) {
							// No reply from here on; the rest of the
							// command (a large one comes in several reads)
							// still reaches the server, which runs it.
							stopReplies()
							cutting = true
							_ = cc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
						}
						_, _ = sc.Write(buf[:n])
					}
					if err != nil {
						if cutting {
							p.cuts.Add(1)
						}
						closeBoth()
						return
					}
				}
			}()
			go func() { // server → client, unless cut
				buf := make([]byte, 64<<10)
				for {
					n, err := sc.Read(buf)
					select {
					case <-cut:
						return
					default:
					}
					if n > 0 {
						_, _ = cc.Write(buf[:n])
					}
					if err != nil {
						closeBoth()
						return
					}
				}
			}()
		}
	}()
	return p
}

func TestWrite_AnUnknownOutcomeWritesNeitherHistoryNorNotificationTwice(t *testing.T) {
	c := newClient(t, redisServer.Addr)
	cat := liveCatalog(t)
	logged := loggedCounter(t, c, cat)
	proxy := startCutProxy(t, redisServer.Addr)
	viaProxy := redis.NewClient(&redis.Options{Addr: proxy.ln.Addr().String(), MaxRetries: -1})
	defer viaProxy.Close()
	r := startService(t, newRedisLog(viaProxy, cat.KeyPrefix), ServiceConfig{Catalog: cat, Log: slog.Default()})
	proxy.armed.Store(true)
	var events []messaging.Event
	for i := range 50 {
		events = append(events, decoded(t, cat, i))
	}
	if _, err := r.svc.Accept("position:updated", events, time.Now()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the proxy cut the reply to the history write", func() bool { return proxy.cuts.Load() == 1 })
	eventually(t, "the 50 events are in the history", func() bool { return len(historyIDs(t, c, cat)) == 50 })
	eventually(t, "50 notifications", func() bool { return len(logged()) == 50 })
	// The writer has found the outcome since: what it would write again,
	// written.
	eventually(t, "nothing pending", func() bool { return r.svc.Pending() == 0 })
	time.Sleep(300 * time.Millisecond)
	for id, n := range historyIDs(t, c, cat) {
		if n != 1 || logged()[id] != 1 {
			t.Fatalf("entry %s: %d in the history, %d notifications; want 1 and 1", id, n, logged()[id])
		}
	}
}

func TestGap_ASubscriberRedisDisconnectsIsRecordedAsAGap(t *testing.T) {
	ctx := context.Background()
	srv, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := newClient(t, srv.Addr)
	cat := liveCatalog(t)
	bus := newRedisLog(c, cat.KeyPrefix)
	r := startService(t, bus, ServiceConfig{Catalog: cat})
	// A message larger than the pub/sub output buffer's hard limit (and
	// than the 16 KiB a client's reply buffer holds before the limit
	// counts): Redis disconnects the subscriber, and the message is lost.
	if err := c.ConfigSet(ctx, "client-output-buffer-limit", "pubsub 1024 0 0").Err(); err != nil {
		t.Fatal(err)
	}
	big, _ := messaging.Envelope(time.Now(), "position_monitor", "updated", map[string]any{"pad": strings.Repeat("x", 64<<10)})
	if err := c.Publish(ctx, cat.ChannelName("position:updated"), big).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the gap is in the history", func() bool {
		h, _, _ := bus.History(ctx, 10, "")
		for _, e := range h {
			if e.Channel == ChannelGap && e.Event.Event == EventSubscriptionGap {
				return true
			}
		}
		return false
	})
	eventually(t, "the stats count the gap on every channel", func() bool {
		st := eventlog.ParseStats(c.HGetAll(ctx, cat.KeyName(messaging.KeyChannelStats)).Val()).Channels
		return st["position:updated"].Gaps == 1 && !st["position:updated"].LastGapTime.IsZero() && st["risk:calculated"].Gaps == 1
	})
	_, metrics := do(t, "GET", r.http.URL+"/metrics", nil)
	if !strings.Contains(metrics, `stratops_eventlogger_subscription_gaps_total{channel="position:updated"} 1`) {
		t.Error("metrics do not count the gap")
	}
	// Subscribed again: messages after the gap are logged.
	_ = c.ConfigSet(ctx, "client-output-buffer-limit", "pubsub 32mb 8mb 60")
	if err := c.Publish(ctx, cat.ChannelName("position:updated"), event(7)).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a message after the gap is logged", func() bool {
		h, _, _ := bus.History(ctx, 10, "")
		return len(h) > 0 && seqOf(h[len(h)-1]) == 7
	})
}

func TestHTTP_AFullSpoolAnswers503AndAPublishedMessageIsCountedDropped(t *testing.T) {
	ctx := context.Background()
	// Redis is down from the start, so nothing leaves the spool.
	srv, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	defer c.Close()
	cat := liveCatalog(t)
	bus := newRedisLog(c, cat.KeyPrefix)
	out := &syncBuffer{}
	svc := NewService(ServiceConfig{Catalog: cat, Out: out, StatsInterval: 50 * time.Millisecond, PingInterval: 50 * time.Millisecond}, bus, bus)
	defer runSpooled(t, svc, 4096)()
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	httpSrv := newTestServer(t, svc)
	accepted := 0
	for {
		code, body := do(t, "POST", httpSrv+"/events?channel=position:updated", event(accepted))
		if code == http.StatusServiceUnavailable {
			if !strings.Contains(body, "spool is full") {
				t.Fatalf("503 does not say the spool is full: %s", body)
			}
			break
		}
		if code != http.StatusAccepted {
			t.Fatalf("POST: %d %s", code, body)
		}
		accepted++
	}
	if accepted == 0 {
		t.Fatal("nothing was accepted before the spool filled")
	}
	// A published message finds no room: written out, counted dropped.
	if err := svc.Ingest("risk:calculated", event(999)); err != ErrSpoolFull {
		t.Fatalf("Ingest with a full spool: %v, want ErrSpoolFull", err)
	}
	if !strings.Contains(out.String(), `"seq":999`) {
		t.Fatal("the dropped message is not in the output")
	}
	_, metrics := do(t, "GET", httpSrv+"/metrics", nil)
	if !strings.Contains(metrics, `stratops_eventlogger_dropped_messages_total{channel="risk:calculated"} 1`) {
		t.Fatal("the drop is not counted in metrics")
	}
	// Redis back: every accepted event reaches the history, once.
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	check := newClient(t, srv.Addr)
	// The subscription may have seen Redis go and come back: its gap
	// event is in the history too, and is not what this counts.
	eventually(t, "every accepted event is in the history and the drop in the stats", func() bool {
		st := eventlog.ParseStats(check.HGetAll(ctx, cat.KeyName(messaging.KeyChannelStats)).Val()).Channels
		return len(historyIDsOn(t, check, cat, "position:updated")) == accepted && st["risk:calculated"].Dropped == 1
	})
	for id, n := range historyIDsOn(t, check, cat, "position:updated") {
		if n != 1 {
			t.Errorf("event %s is in the history %d times", id, n)
		}
	}
}

func newTestServer(t *testing.T, svc *Service) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return "http://" + ln.Addr().String()
}

func TestGap_ALoggerThatStartsAfterAnotherStoppedReportsTheTimeBetween(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, redisServer.Addr)
	cat := liveCatalog(t)
	bus := newRedisLog(c, cat.KeyPrefix)
	first := startService(t, bus, ServiceConfig{Catalog: cat})
	eventually(t, "the first logger's heartbeat", func() bool {
		at, _ := bus.LastSubscribed(ctx)
		return !at.IsZero()
	})
	first.stop()
	stoppedAt := time.Now()
	time.Sleep(1500 * time.Millisecond) // messages published now reach no logger
	startService(t, newRedisLog(newClient(t, redisServer.Addr), cat.KeyPrefix), ServiceConfig{Catalog: cat})
	eventually(t, "the gap between the two is in the history", func() bool {
		h, _, _ := bus.History(ctx, 10, "")
		for _, e := range h {
			if g, ok := gapOf(e); ok {
				return !g.Start.After(stoppedAt) && g.End.Sub(g.Start) >= 1500*time.Millisecond
			}
		}
		return false
	})
}
