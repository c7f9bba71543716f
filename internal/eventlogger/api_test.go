package eventlogger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stratops/stratops/pkg/messaging"
)

const testToken = "0123456789abcdef0123456789abcdef"

func doAuth(t *testing.T, method, url, token string, body []byte) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestAPI_NeedsTheToken: every API route refuses a request without the
// bearer token, or with another, and serves one with it; health and
// metrics need none.
func TestAPI_NeedsTheToken(t *testing.T) {
	cat := liveCatalog(t)
	r := startService(t, newMemoryLog(), ServiceConfig{Catalog: cat, APIToken: testToken})
	api := httptest.NewServer(r.svc.APIHandler())
	defer api.Close()
	health := httptest.NewServer(r.svc.HealthHandler())
	defer health.Close()

	value := []byte(`{"timestamp":"2024-05-12T14:00:00Z","overall_status":"OK"}`)
	for _, c := range []struct{ method, path string }{
		{"PUT", "/state/risk:current"}, {"GET", "/state/risk:current"}, {"GET", "/state/events:history"},
		{"POST", "/events"}, {"PUT", "/state/config:strategy"},
	} {
		for _, token := range []string{"", "not-the-token", testToken + "x"} {
			code, h, body := doAuth(t, c.method, api.URL+c.path, token, value)
			if code != http.StatusUnauthorized || !strings.Contains(body, messaging.EnvEventLoggerToken) || h.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with token %q: %d %s; want 401 naming %s", c.method, c.path, token, code, body, messaging.EnvEventLoggerToken)
			}
		}
	}
	if code, _, body := doAuth(t, "PUT", api.URL+"/state/risk:current", testToken, value); code != http.StatusNoContent {
		t.Fatalf("with the token: %d %s", code, body)
	}
	if code, _, body := doAuth(t, "GET", api.URL+"/state/risk:current", testToken, nil); code != 200 || !strings.Contains(body, `"OK"`) {
		t.Fatalf("read back with the token: %d %s", code, body)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _, _ := doAuth(t, "GET", health.URL+p, "", nil); code != 200 {
			t.Errorf("health port %s: %d", p, code)
		}
		if code, _, _ := doAuth(t, "GET", api.URL+p, testToken, nil); code != http.StatusNotFound {
			t.Errorf("API port serves %s: %d", p, code)
		}
	}
	for _, p := range []string{"/state/risk:current", "/events"} {
		if code, _, _ := doAuth(t, "GET", health.URL+p, testToken, nil); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			t.Errorf("health port serves %s: %d", p, code)
		}
	}
	_, _, metrics := doAuth(t, "GET", health.URL+"/metrics", "", nil)
	if !strings.Contains(metrics, `stratops_eventlogger_api_requests_refused_total{reason="unauthorized"} 15`) {
		t.Errorf("refusals are counted: %s", grepLines(metrics, "refused"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAPI_BodiesAreBoundedByTheMessageLimit: a request over the message
// limit, single event, batch or key value, is refused with 413 and nothing
// of it is taken.
func TestAPI_BodiesAreBoundedByTheMessageLimit(t *testing.T) {
	cat := liveCatalog(t)
	bus := newMemoryLog()
	r := startService(t, bus, ServiceConfig{Catalog: cat, APIToken: testToken, MaxMessageBytes: 1024})
	api := httptest.NewServer(r.svc.APIHandler())
	defer api.Close()
	small := fmt.Sprintf(`{"timestamp":"2024-05-12T14:00:00Z","component":"a","event":"b","metadata":{"x":"%s"}}`, strings.Repeat("y", 300))
	batch := "[" + strings.Join([]string{small, small, small, small}, ",") + "]" // each fits, together over 1024
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/events", batch},
		{"POST", "/events", strings.Repeat(" ", 2000) + small},
		{"PUT", "/state/risk:current", `{"timestamp":"2024-05-12T14:00:00Z","x":"` + strings.Repeat("y", 2000) + `"}`},
	} {
		if code, _, body := doAuth(t, c.method, api.URL+c.path, testToken, []byte(c.body)); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "too_large") {
			t.Errorf("%s %s of %d bytes: %d %s; want 413", c.method, c.path, len(c.body), code, body)
		}
	}
	if h, _, _ := bus.History(t.Context(), 10, ""); len(h) != 0 {
		t.Errorf("a refused request was logged in part: %d entries", len(h))
	}
}

// TestAPI_ConcurrentRequestsAreBounded: beyond MaxConcurrentRequests in
// flight, a request is refused with 429 and Retry-After, and served again
// once a slot is free.
func TestAPI_ConcurrentRequestsAreBounded(t *testing.T) {
	cat := liveCatalog(t)
	r := startService(t, newMemoryLog(), ServiceConfig{Catalog: cat, APIToken: testToken, MaxConcurrentRequests: 2})
	api := httptest.NewServer(r.svc.APIHandler())
	defer api.Close()

	// Two requests whose bodies never finish hold both slots.
	var writers []*io.PipeWriter
	done := make(chan int, 2)
	for range 2 {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		req, _ := http.NewRequest("PUT", api.URL+"/state/risk:current", pr)
		req.Header.Set("Authorization", "Bearer "+testToken)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		_, _ = pw.Write([]byte(`{"timestamp":`))
	}
	eventually(t, "both slots held", func() bool { return len(r.svc.inFlight) == 2 })
	code, h, body := doAuth(t, "GET", api.URL+"/state/risk:current", testToken, nil)
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Fatalf("a third request: %d %s; want 429 with Retry-After", code, body)
	}
	for _, pw := range writers {
		_, _ = pw.Write([]byte(`"2024-05-12T14:00:00Z"}`))
		_ = pw.Close()
	}
	for range 2 {
		if c := <-done; c != http.StatusNoContent {
			t.Errorf("a held request ended with %d", c)
		}
	}
	if code, _, _ := doAuth(t, "GET", api.URL+"/state/risk:current", testToken, nil); code != 200 {
		t.Errorf("after the slots are free: %d", code)
	}
}

// TestAPI_SlowClientsAreCutOff: a client that sends its headers slowly, or
// idles, is disconnected by the server's timeouts.
func TestAPI_SlowClientsAreCutOff(t *testing.T) {
	cat := liveCatalog(t)
	r := startService(t, newMemoryLog(), ServiceConfig{Catalog: cat, APIToken: testToken})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(r.svc.APIHandler(), Timeouts{ReadHeader: 300 * time.Millisecond, Read: time.Second, Write: time.Second, Idle: 500 * time.Millisecond})
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	for name, send := range map[string]string{
		"headers never finished": "GET /state/risk:current HTTP/1.1\r\nHost: x\r\n",
		"idle after connecting":  "",
	} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte(send))
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(c)
		_ = c.Close()
		if took := time.Since(start); err != nil || took > 3*time.Second {
			t.Errorf("%s: the server kept the connection %s (%v)", name, took, err)
		}
	}
}

// TestAPI_HistoryIsReadInBoundedPages: events:history comes in pages of at
// most 1000, newest first, each with the cursor of the older one.
func TestAPI_HistoryIsReadInBoundedPages(t *testing.T) {
	cat := liveCatalog(t)
	r := startService(t, newMemoryLog(), ServiceConfig{Catalog: cat, APIToken: testToken})
	api := httptest.NewServer(r.svc.APIHandler())
	defer api.Close()
	var batch []string
	for i := range 25 {
		batch = append(batch, fmt.Sprintf(`{"timestamp":"2024-05-12T14:00:00Z","component":"a","event":"b","metadata":{"n":%d}}`, i))
	}
	if code, _, body := doAuth(t, "POST", api.URL+"/events", testToken, []byte("["+strings.Join(batch, ",")+"]")); code != http.StatusAccepted {
		t.Fatalf("post: %d %s", code, body)
	}
	eventually(t, "all 25 recorded", func() bool {
		h, _, _ := r.svc.store.History(t.Context(), 100, "")
		return len(h) == 25
	})
	var ns []int
	before, pages := "", 0
	for {
		q := "?count=10"
		if before != "" {
			q += "&before=" + before
		}
		code, _, body := doAuth(t, "GET", api.URL+"/state/events:history"+q, testToken, nil)
		if code != 200 {
			t.Fatalf("page %d: %d %s", pages, code, body)
		}
		var resp struct {
			Value []struct {
				Message struct {
					Metadata struct{ N int } `json:"metadata"`
				} `json:"message"`
			} `json:"value"`
			Next string `json:"next"`
		}
		if err := json.Unmarshal([]byte(body), &resp); err != nil {
			t.Fatal(err)
		}
		var page []int
		for _, e := range resp.Value {
			page = append(page, e.Message.Metadata.N)
		}
		ns = append(page, ns...)
		pages++
		if resp.Next == "" {
			break
		}
		before = resp.Next
	}
	if pages != 3 || len(ns) != 25 || ns[0] != 0 || ns[24] != 24 {
		t.Fatalf("%d pages: %v", pages, ns)
	}
	for _, q := range []string{"?count=1001", "?count=0", "?count=x", "?before=nope"} {
		if code, _, body := doAuth(t, "GET", api.URL+"/state/events:history"+q, testToken, nil); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s; want 400", q, code, body)
		}
	}
}
