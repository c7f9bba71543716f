package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/internal/redisprobe"
	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/internal/redistest"
	"github.com/stratops/stratops/pkg/messaging"
)

// readmeACL is the least-privilege ACL rule docs/strategy.md gives, for user,
// password and prefix.
func readmeACL(t *testing.T, user, password, prefix string) []any {
	b, err := os.ReadFile("../../docs/strategy.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?m)^ACL SETUSER <user> .*$").Find(b)
	if m == nil {
		t.Fatal("docs/strategy.md gives no line starting \"ACL SETUSER <user>\"")
	}
	return readmeACLArgs(t, user, password, prefix)
}

func readmeACLArgs(t *testing.T, user, password, prefix string) []any {
	b, _ := os.ReadFile("../../docs/strategy.md")
	m := regexp.MustCompile("(?m)^ACL SETUSER <user> .*$").Find(b)
	line := strings.NewReplacer("<user>", user, "<password>", password, "<prefix>", prefix).Replace(string(m))
	var args []any
	for _, f := range strings.Fields(line) {
		args = append(args, f)
	}
	return args
}

// TestACL_TheDocumentedLeastPrivilegeRuleIsEnough: a Redis user made with the
// documented rule passes every probe of the gate, the prefix claim and the
// health read-out; the logger, run as the operator provisions it, writes
// history and stats and is ready; a component publishes state. Without any
// one of the rule's commands the gate's round fails, naming it.
func TestACL_TheDocumentedLeastPrivilegeRuleIsEnough(t *testing.T) {
	ctx := context.Background()
	readmeACL(t, "x", "y", "z")
	srv, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	admin := redistest.Client(t, srv.Addr)
	const prefix = "acl:"
	if err := admin.Do(ctx, readmeACLArgs(t, "strategy", "s3cret", prefix)...).Err(); err != nil {
		t.Fatalf("the documented rule: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "strategy", Password: "s3cret", MaxRetries: -1})
	defer c.Close()
	rep := redisprobe.Run(ctx, c, redisprobe.Options{Prefix: prefix, Timeout: 2 * time.Second})
	if f, failed := rep.Failed(); failed {
		t.Fatalf("the gate's round fails under the documented rule: %+v", f)
	}
	if _, ok, err := redisprobe.ClaimPrefix(ctx, c, prefix, redisprobe.Owner{UID: "u", Namespace: "n", Name: "s"}, time.Minute); !ok || err != nil {
		t.Fatalf("the prefix claim under the documented rule: %v %v", ok, err)
	}
	cat := messaging.Standard(messaging.ModeLive)
	cat.KeyPrefix = prefix
	if _, err := redisprobe.ReadHealth(ctx, c, cat, time.Now()); err != nil {
		t.Fatalf("the health read-out under the documented rule: %v", err)
	}

	// The logger, as the operator runs it, with that user.
	var stdout bytes.Buffer
	env := []string{messaging.EnvRedisUsername + "=strategy", messaging.EnvRedisPassword + "=s3cret"}
	_, url := startLoggerEnv(t, srv.Addr, t.TempDir(), prefix, &stdout, env)
	body, _ := messaging.Envelope(time.Now(), "position_monitor", "updated", map[string]any{"seq": 1})
	resp, err := http.Post(url+"/events?channel=position:updated", "application/json", bytes.NewReader(body))
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /events: %v %v", resp, err)
	}
	resp.Body.Close()
	comp, err := messaging.Connect(ctx, messaging.Config{Redis: messaging.RedisConfig{Addrs: []string{srv.Addr}, Username: "strategy", Password: "s3cret"}},
		messaging.Options{Catalog: &cat})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = comp.Close(ctx) }()
	if err := comp.PublishState(ctx, "position:updated", map[string]any{"seq": 2}, "position:snapshot", map[string]any{"qty": 1}); err != nil {
		t.Fatalf("a component's PublishState under the documented rule: %v", err)
	}
	waitFor(t, "both events in the history and the stats written", func() bool {
		st := eventlog.ParseStats(admin.HGetAll(ctx, prefix+messaging.KeyChannelStats).Val())
		return admin.XLen(ctx, prefix+messaging.KeyEventsHistory).Val() == 2 && st.Channels["position:updated"].Messages == 2
	})
	r, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if r.StatusCode != 200 {
		t.Fatalf("/readyz under the documented rule: %d %s", r.StatusCode, msg)
	}

	// Each command the logger writes with is needed: without it the gate
	// says which.
	for _, cmd := range []string{"xadd", "hincrby", "expire", "xrevrange", "publish", "evalsha", "pexpire"} {
		user := "minus-" + cmd
		args := append(readmeACLArgs(t, user, "pw", prefix), "-"+cmd)
		if err := admin.Do(ctx, args...).Err(); err != nil {
			t.Fatal(err)
		}
		nc := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: user, Password: "pw", MaxRetries: -1})
		rep := redisprobe.Run(ctx, nc, redisprobe.Options{Prefix: prefix, Timeout: 2 * time.Second})
		_ = nc.Close()
		f, failed := rep.Failed()
		if !failed || f.Reason != redisprobe.ReasonPermissionDenied || !strings.Contains(strings.ToLower(f.Message), cmd) {
			t.Errorf("without %s: want the round failing PermissionDenied naming it, got %+v", cmd, f)
		}
	}
}
