// Package conformance checks one component against the messaging standard
// before it ships: it starts a real redis-server and the event logger on a
// Strategy's catalog, runs the component with the environment the
// operator would give it, watches every channel and key it touches, and
// reports, per channel, what was published (shape, timestamps, invalid and
// nonconforming counts, subscribers seen) and, per key, the TTL applied
// against the catalog's policy and the value's timestamp. Every departure
// from the standard is a fault that names what is wrong.
package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/pkg/messaging"
)

// Options of a check.
type Options struct {
	// Catalog the component is checked against (its mode and key prefix
	// included).
	Catalog messaging.Catalog
	// Command runs the component.
	Command []string
	// Component, when set, is the catalog's name of the component: the
	// channels it publishes must be published, the keys it writes
	// written, the channels it subscribes to subscribed. default: none
	// (only what the component touched is judged).
	Component string
	// Duration is how long the component runs (less if it exits).
	// default: 10s.
	Duration time.Duration
	// LoggerBinary is the event logger to run beside the component.
	LoggerBinary string
	// Output receives the component's and the logger's output.
	// default: discarded.
	Output io.Writer
}

// Run checks the component and returns the report; an error is a check
// that could not be made (no redis-server, a logger that did not start).
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Output == nil {
		o.Output = io.Discard
	}
	if len(o.Command) == 0 {
		return nil, errors.New("conformance: no component to run")
	}
	if err := o.Catalog.Validate(); err != nil {
		return nil, err
	}
	srv, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		return nil, fmt.Errorf("conformance: starting redis-server: %w", err)
	}
	defer srv.Close()
	dir, err := os.MkdirTemp("", "stratops-conformance-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	env, err := o.environment(srv.Addr, dir)
	if err != nil {
		return nil, err
	}
	stopLogger, err := startLogger(ctx, o, env)
	if err != nil {
		return nil, err
	}
	defer stopLogger()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer func() { _ = rdb.Close() }()
	return o.watch(ctx, rdb, env)
}

// environment is the component's: what the operator gives a Strategy's
// pods (mode, Redis, catalog file, key prefix, the logger's URL and token).
func (o Options) environment(redisAddr, dir string) ([]string, error) {
	raw, err := o.Catalog.Marshal()
	if err != nil {
		return nil, err
	}
	catFile := filepath.Join(dir, messaging.CatalogFileName)
	if err := os.WriteFile(catFile, raw, 0o600); err != nil {
		return nil, err
	}
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	return []string{
		messaging.EnvMode + "=" + string(o.Catalog.Mode),
		messaging.EnvRedisAddrs + "=" + redisAddr,
		messaging.EnvCatalogFile + "=" + catFile,
		messaging.EnvKeyPrefix + "=" + o.Catalog.KeyPrefix,
		messaging.EnvEventLoggerToken + "=" + hex.EncodeToString(token),
	}, nil
}

// watch runs the component under observation and judges what it did.
func (o Options) watch(ctx context.Context, rdb *redis.Client, env []string) (*Report, error) {
	cat := o.Catalog
	obs := newObserver(&cat)
	ps := rdb.PSubscribe(ctx, cat.KeyPrefix+"*")
	defer func() { _ = ps.Close() }()
	if _, err := ps.Receive(ctx); err != nil {
		return nil, fmt.Errorf("conformance: subscribing: %w", err)
	}
	done := make(chan struct{})
	go func() { defer close(done); obs.read(ps.Channel()) }()
	baseline, err := numsub(ctx, rdb, &cat)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	exitErr, err := o.runComponent(ctx, env, func() { obs.sampleSubscribers(ctx, rdb, baseline) })
	if err != nil {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond) // what was in flight
	_ = ps.Close()
	<-done
	r := &Report{Mode: string(cat.Mode), Component: o.Component, Ran: time.Since(start).Round(time.Millisecond)}
	if exitErr != nil {
		r.ComponentFaults = append(r.ComponentFaults, "the component exited with an error: "+exitErr.Error())
	}
	r.Channels = obs.channels(o.Component)
	if r.Keys, err = judgeKeys(ctx, rdb, &cat, o.Component, time.Since(start)); err != nil {
		return nil, err
	}
	return r, nil
}

// runComponent runs the command for the duration (or until it exits),
// calling tick every half second; a component still running is sent
// SIGTERM, then killed. It returns the component's own failure, if it
// exited with one before it was stopped.
func (o Options) runComponent(ctx context.Context, env []string, tick func()) (error, error) {
	cmd := exec.CommandContext(ctx, o.Command[0], o.Command[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = o.Output, o.Output
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("conformance: starting the component: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(o.Duration)
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case err := <-exited:
			tick()
			return err, nil
		case <-t.C:
			tick()
		case <-deadline:
			tick()
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-exited:
				_ = err // stopped by us: how it ended is not the component's fault
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				err := <-exited
				_ = err
			}
			return nil, nil
		}
	}
}

// numsub counts the subscribers of each catalog channel.
func numsub(ctx context.Context, rdb *redis.Client, cat *messaging.Catalog) (map[string]int64, error) {
	names := make([]string, 0, len(cat.Channels))
	for _, c := range cat.Channels {
		names = append(names, cat.ChannelName(c.Name))
	}
	n, err := rdb.PubSubNumSub(ctx, names...).Result()
	if err != nil {
		return nil, fmt.Errorf("conformance: PUBSUB NUMSUB: %w", err)
	}
	out := map[string]int64{}
	for _, c := range cat.Channels {
		out[c.Name] = n[cat.ChannelName(c.Name)]
	}
	return out, nil
}

// startLogger runs the event logger on the catalog, as the operator
// provisions it, until stop.
func startLogger(ctx context.Context, o Options, env []string) (stop func(), err error) {
	cmd := exec.CommandContext(ctx, o.LoggerBinary, "--http-addr=127.0.0.1:0", "--health-addr=")
	cmd.Env = append(os.Environ(), env...)
	out := &lineWatch{w: o.Output, want: "Took the lease", seen: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("conformance: starting the event logger %s: %w", o.LoggerBinary, err)
	}
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	select {
	case <-out.seen:
		return stop, nil
	case <-time.After(15 * time.Second):
		stop()
		return nil, errors.New("conformance: the event logger did not start listening within 15s")
	}
}

// lineWatch passes output on and says when a line contains want.
type lineWatch struct {
	mu   sync.Mutex
	w    io.Writer
	want string
	seen chan struct{}
	once sync.Once
	buf  []byte
}

func (l *lineWatch) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if i := strings.LastIndexByte(string(l.buf), '\n'); i >= 0 {
		if strings.Contains(string(l.buf[:i]), l.want) {
			l.once.Do(func() { close(l.seen) })
		}
		l.buf = l.buf[i+1:]
	}
	return l.w.Write(p)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
