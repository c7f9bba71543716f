package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/internal/redistest"
	"github.com/stratops/stratops/pkg/messaging"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eventlogger-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "eventlogger")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the event logger: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestLiveWithoutRedisExitsNonZeroSayingRedisIsRequired(t *testing.T) {
	for name, env := range map[string][]string{
		"no address":          {messaging.EnvMode + "=Live"},
		"unreachable address": {messaging.EnvMode + "=Live", messaging.EnvRedisAddrs + "=" + closedAddr(t), messaging.EnvRedisDialTimeout + "=100ms"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "--startup-timeout=1s", "--http-addr=127.0.0.1:0", "--health-addr=")
			cmd.Env = append(os.Environ(), env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			exitErr, ok := err.(*exec.ExitError)
			if !ok || exitErr.ExitCode() == 0 {
				t.Fatalf("want a non-zero exit, got %v", err)
			}
			if !strings.Contains(stderr.String(), "Redis is required for live trading") {
				t.Fatalf("stderr does not say Redis is required for live trading:\n%s", stderr.String())
			}
		})
	}
}

func TestBacktestWithUnreachableRedisRunsOnMemoryAndSaysSo(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := l.Addr().String()
	l.Close()
	cmd := exec.Command(binary, "--startup-timeout=500ms", "--http-addr="+httpAddr, "--health-addr=")
	cmd.Env = append(os.Environ(), messaging.EnvMode+"=Backtest", messaging.EnvRedisAddrs+"="+closedAddr(t),
		messaging.EnvRedisDialTimeout+"=100ms", messaging.EnvRedisPassword+"=never-logged-secret")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() }()

	var body string
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				body = string(b)
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never passed; stderr:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(body, "bus=memory (in-memory fallback") {
		t.Fatalf("/readyz body %q does not report the in-memory fallback", body)
	}
	resp, err := http.Post("http://"+httpAddr+"/events", "application/json",
		strings.NewReader(`{"timestamp":"2024-05-12T14:00:00Z","component":"position_monitor","event":"updated","metadata":{}}`))
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /events on memory: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, _ = http.Get("http://" + httpAddr + "/metrics")
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), "stratops_eventlogger_in_memory_fallback 1") {
		t.Fatal("metrics do not report the in-memory fallback")
	}
	// SIGTERM: a graceful stop with exit code 0.
	_ = cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	if strings.Count(stdout.String(), "\n") != 1 || !strings.Contains(stdout.String(), `"component":"position_monitor"`) {
		t.Fatalf("stdout should hold exactly the one logged event:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "in-memory bus") {
		t.Fatalf("no warning about the fallback:\n%s", stderr.String())
	}
	if strings.Contains(stdout.String()+stderr.String(), "never-logged-secret") {
		t.Fatal("the Redis password appeared in the output")
	}
}

// TestABadSettingIsRefusedByName: a spool size written as a quantity
// (256Mi) is not quietly read as the default: the logger exits with 2,
// naming the variable.
func TestABadSettingIsRefusedByName(t *testing.T) {
	cmd := exec.Command(binary, "--http-addr=127.0.0.1:0", "--health-addr=")
	cmd.Env = append(os.Environ(), messaging.EnvMode+"=Backtest", "STRATOPS_SPOOL_MAX_BYTES=256Mi")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if exitErr, ok := err.(*exec.ExitError); !ok || exitErr.ExitCode() != 2 {
		t.Fatalf("want exit 2, got %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), `STRATOPS_SPOOL_MAX_BYTES="256Mi"`) {
		t.Fatalf("stderr does not name the variable:\n%s", stderr.String())
	}
}

// startLogger runs the binary in Live on redisAddr with its spool in dir,
// and waits until it is ready; it returns the process and the API's URL.
func startLogger(t testing.TB, redisAddr, spoolDir, prefix string, stdout io.Writer) (*exec.Cmd, string) {
	t.Helper()
	return startLoggerEnv(t, redisAddr, spoolDir, prefix, stdout, nil)
}

// startLoggerEnv is startLogger with more environment.
func startLoggerEnv(t testing.TB, redisAddr, spoolDir, prefix string, stdout io.Writer, extra []string) (*exec.Cmd, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	args := []string{"--http-addr=" + addr, "--health-addr="}
	if spoolDir != "" {
		args = append(args, "--spool-dir="+spoolDir)
	}
	bin := binary
	if b := os.Getenv("STRATOPS_BENCH_LOGGER"); b != "" {
		// Another build of the logger (an earlier release), to compare.
		bin = b
	}
	cmd := exec.Command(bin, args...)
	cat := messaging.Standard(messaging.ModeLive)
	cat.KeyPrefix = prefix
	catFile := filepath.Join(t.TempDir(), "catalog.json")
	b, _ := json.Marshal(cat)
	if err := os.WriteFile(catFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), messaging.EnvMode+"=Live", messaging.EnvRedisAddrs+"="+redisAddr, messaging.EnvCatalogFile+"="+catFile)
	cmd.Env = append(cmd.Env, extra...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, "http://" + addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the logger never got ready:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSpool_SIGKILLLosesNoAcknowledgedEvent: events acknowledged while
// Redis is down are in the spool; the logger is killed with SIGKILL; once
// it and Redis are back, every acknowledged event is in the history
// exactly once, those written before the kill included.
func TestSpool_SIGKILLLosesNoAcknowledgedEvent(t *testing.T) {
	ctx := context.Background()
	srv, err := redisserver.Start(redisserver.Options{Persist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	spool := t.TempDir()
	prefix := "sigkill:"
	logger, url := startLogger(t, srv.Addr, spool, prefix, io.Discard)
	post := func(url string, i int) int {
		body, _ := messaging.Envelope(time.Now(), "position_monitor", "updated", map[string]any{"seq": i})
		resp, err := http.Post(url+"/events?channel=position:updated", "application/json", bytes.NewReader(body))
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		return resp.StatusCode
	}
	acked := 0
	for i := range 100 {
		if post(url, i) == http.StatusAccepted {
			acked++
		}
	}
	c := redistest.Client(t, srv.Addr)
	hist := prefix + messaging.KeyEventsHistory
	waitFor(t, "the first 100 in the history", func() bool { return c.XLen(ctx, hist).Val() == 100 })
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	for i := 100; i < 400; i++ {
		if post(url, i) == http.StatusAccepted {
			acked++
		}
	}
	if acked != 400 {
		t.Fatalf("%d of 400 events acknowledged; with a spool every one should be", acked)
	}
	first, _ := filepath.Glob(filepath.Join(spool, "seg-*"))
	if len(first) == 0 {
		t.Fatal("nothing in the spool")
	}
	// SIGKILL: no drain, no flush.
	_ = logger.Process.Signal(syscall.SIGKILL)
	_, _ = logger.Process.Wait()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	startLogger(t, srv.Addr, spool, prefix, io.Discard)
	waitFor(t, "400 entries in the history", func() bool { return c.XLen(ctx, hist).Val() >= 400 })
	time.Sleep(500 * time.Millisecond)
	msgs, err := c.XRange(ctx, hist, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, m := range msgs {
		var md struct{ Metadata struct{ Seq int } }
		_ = json.Unmarshal([]byte(m.Values["message"].(string)), &md)
		seen[fmt.Sprint(md.Metadata.Seq)]++
	}
	if len(msgs) != 400 || len(seen) != 400 {
		t.Fatalf("history has %d entries for %d distinct events; want 400 and 400", len(msgs), len(seen))
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReplicas_LeaderKilledUnderLoadLosesAndDuplicatesNothing: two
// replicas of the logger on one prefix, 1,000 msg/s published; the one
// that holds the lease is SIGKILLed; the other takes over. Every message
// published is in the history exactly once.
func TestReplicas_LeaderKilledUnderLoadLosesAndDuplicatesNothing(t *testing.T) {
	ctx := context.Background()
	srv, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	const prefix = "ha:"
	a, urlA := startLoggerEnv(t, srv.Addr, t.TempDir(), prefix, io.Discard, []string{"STRATOPS_POD_NAME=logger-a"})
	b, urlB := startLoggerEnv(t, srv.Addr, t.TempDir(), prefix, io.Discard, []string{"STRATOPS_POD_NAME=logger-b"})
	role := func(url string) string {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	waitFor(t, "one leader and one standby", func() bool {
		ra, rb := role(urlA), role(urlB)
		return strings.Contains(ra, "role=leader") != strings.Contains(rb, "role=leader") &&
			(strings.Contains(ra, "role=standby") || strings.Contains(rb, "role=standby"))
	})
	leader, standbyURL := a, urlB
	if strings.Contains(role(urlB), "role=leader") {
		leader, standbyURL = b, urlA
	}
	c := redistest.Client(t, srv.Addr)
	ch := prefix + "position:updated"
	const total = 6000 // 6 s at 1,000 msg/s
	killed := make(chan time.Time, 1)
	for i := 0; i < total; i++ {
		if i == 2000 {
			_ = leader.Process.Signal(syscall.SIGKILL)
			killed <- time.Now()
		}
		body, _ := messaging.Envelope(time.Now(), "position_monitor", "updated", map[string]any{"seq": i})
		if err := c.Publish(ctx, ch, body).Err(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	waitFor(t, "the standby leads", func() bool { return strings.Contains(role(standbyURL), "role=leader") })
	hist := prefix + messaging.KeyEventsHistory
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end) && c.XLen(ctx, hist).Val() < total; {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	msgs, err := c.XRange(ctx, hist, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for _, m := range msgs {
		if m.Values["channel"] != "position:updated" {
			continue
		}
		var md struct{ Metadata struct{ Seq int } }
		_ = json.Unmarshal([]byte(m.Values["message"].(string)), &md)
		seen[md.Metadata.Seq]++
	}
	lost, dup := 0, 0
	first, last := -1, -1
	for i := 0; i < total; i++ {
		switch n := seen[i]; {
		case n == 0:
			if first < 0 {
				first = i
			}
			last = i
			lost++
		case n > 1:
			dup++
		}
	}
	t.Logf("leader killed after 2,000 of %d messages at 1,000 msg/s: %d lost (seq %d to %d), %d duplicated; killed at %s",
		total, lost, first, last, dup, (<-killed).Format(time.RFC3339Nano))
	if lost != 0 || dup != 0 {
		t.Fatalf("%d messages lost and %d duplicated across the takeover; want none", lost, dup)
	}
	resp, err := http.Get(standbyURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(m), "stratops_eventlogger_takeovers_total 1") {
		t.Fatal("the standby does not count its takeover")
	}
}
