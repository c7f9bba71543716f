// Command eventlogger is the standard's Event Logger, as the operator
// deploys it for each Strategy: it listens to the strategy's channels on
// Redis (or, in a backtest without Redis, on memory), logs every valid
// event, skips and counts invalid ones, and serves state, ingest, health
// and metrics over HTTP. Configuration comes from flags, whose defaults come
// from the STRATOPS_* environment the operator sets; the Redis password
// comes only from STRATOPS_REDIS_PASSWORD and is never logged.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/stratops/stratops/internal/eventlog"
	el "github.com/stratops/stratops/internal/eventlogger"
	"github.com/stratops/stratops/internal/eventlogger/settings"
	"github.com/stratops/stratops/internal/version"
	"github.com/stratops/stratops/pkg/messaging"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "conformance" {
		os.Exit(runConformance(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:]))
}

type options struct {
	mode, catalogFile, httpAddr, healthAddr, logLevel string
	eventLogFile, apiToken, spoolDir, holder          string
	spoolMaxBytes                                     int64
	drainTimeout                                      time.Duration
	maxMessageBytes, pendingLimit                     int
	redis                                             messaging.RedisConfig
	startupTimeout, healthInterval                    time.Duration
}

func parseFlags(args []string) (options, error) {
	var o options
	var addrs string
	// The operator's pod contract and the logger's own settings give the
	// defaults; flags override them. A variable that does not parse is an
	// error that names it.
	def, err := messaging.ConfigFromEnv(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return o, err
	}
	own, err := settings.FromEnv(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return o, err
	}
	fs := flag.NewFlagSet("eventlogger", flag.ContinueOnError)
	fs.StringVar(&o.mode, "mode", string(def.Mode), "Backtest or Live (default: the catalog's mode) [$"+messaging.EnvMode+"]")
	fs.StringVar(&o.catalogFile, "catalog", def.CatalogFile, "catalog JSON file; empty: the standard's catalog [$"+messaging.EnvCatalogFile+"]")
	fs.StringVar(&o.httpAddr, "http-addr", own.HTTPAddr, "listen address of the state and events API [$"+settings.EnvHTTPAddr+"]")
	fs.StringVar(&o.healthAddr, "health-addr", own.HealthAddr,
		"listen address of /healthz, /readyz and /metrics; empty: served on the API's address [$"+settings.EnvHealthAddr+"]")
	fs.StringVar(&o.logLevel, "log-level", cmp.Or(def.LogLevel, "info"), "debug, info, warn or error [$"+messaging.EnvLogLevel+"]")
	fs.StringVar(&o.eventLogFile, "event-log-file", own.EventLogFile, "also append event lines to this file [$"+settings.EnvEventLogFile+"]")
	fs.IntVar(&o.maxMessageBytes, "max-message-bytes", own.MaxMessageBytes, "largest accepted message [$"+settings.EnvMaxMessageBytes+"]")
	fs.IntVar(&o.pendingLimit, "pending-limit", own.PendingLimit, "events kept in memory while they wait for the history [$"+settings.EnvPendingQueueLimit+"]")
	fs.StringVar(&o.spoolDir, "spool-dir", own.SpoolDir, "keep accepted events in this directory until the history has them; empty: no spool (a crash loses what waits) [$"+settings.EnvSpoolDir+"]")
	fs.Int64Var(&o.spoolMaxBytes, "spool-max-bytes", own.SpoolMaxBytes, "the spool's room in bytes; when full, POST /events answers 503 and published messages are counted dropped [$"+settings.EnvSpoolMaxBytes+"]")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", own.DrainTimeout, "at shutdown, how long to keep writing what waits to the history [$"+settings.EnvDrainTimeout+"]")
	fs.StringVar(&o.holder, "holder", own.PodName, "this replica's name in the lease (default: the host name) [$"+settings.EnvPodName+"]")
	fs.DurationVar(&o.healthInterval, "health-interval", def.HealthInterval, "the Strategy's health check interval; the health window is this, or 1m when longer [$"+messaging.EnvHealthInterval+"]")
	fs.StringVar(&addrs, "redis-addrs", strings.Join(def.Redis.Addrs, ","), "Redis address(es), comma-separated; empty: no Redis [$"+messaging.EnvRedisAddrs+"]")
	fs.StringVar(&o.redis.Topology, "redis-topology", def.Redis.Topology, "Standalone, Sentinel or Cluster [$"+messaging.EnvRedisTopology+"]")
	fs.StringVar(&o.redis.MasterName, "redis-master-name", def.Redis.MasterName, "Sentinel master name [$"+messaging.EnvRedisMasterName+"]")
	fs.IntVar(&o.redis.DB, "redis-db", def.Redis.DB, "Redis database [$"+messaging.EnvRedisDB+"]")
	fs.StringVar(&o.redis.Username, "redis-username", def.Redis.Username, "Redis ACL user [$"+messaging.EnvRedisUsername+"]")
	fs.BoolVar(&o.redis.TLS, "redis-tls", def.Redis.TLS, "use TLS [$"+messaging.EnvRedisTLS+"]")
	fs.StringVar(&o.redis.CAFile, "redis-tls-ca-file", def.Redis.CAFile, "PEM CA bundle [$"+messaging.EnvRedisTLSCAFile+"]")
	fs.StringVar(&o.redis.ClientCertFile, "redis-tls-cert-file", def.Redis.ClientCertFile, "PEM client certificate (mutual TLS) [$"+messaging.EnvRedisTLSCertFile+"]")
	fs.StringVar(&o.redis.ClientKeyFile, "redis-tls-key-file", def.Redis.ClientKeyFile, "PEM client key (mutual TLS) [$"+messaging.EnvRedisTLSKeyFile+"]")
	fs.StringVar(&o.redis.ServerName, "redis-tls-server-name", def.Redis.ServerName, "TLS server name [$"+messaging.EnvRedisTLSServer+"]")
	fs.BoolVar(&o.redis.InsecureSkipVerify, "redis-tls-insecure-skip-verify", def.Redis.InsecureSkipVerify, "skip TLS verification (tests only) [$"+messaging.EnvRedisTLSInsecure+"]")
	fs.DurationVar(&o.redis.DialTimeout, "redis-dial-timeout", def.Redis.DialTimeout, "Redis dial timeout [$"+messaging.EnvRedisDialTimeout+"]")
	fs.DurationVar(&o.startupTimeout, "startup-timeout", 10*time.Second, "how long to try to reach Redis at start")
	fs.Bool("version", false, "print the version, the commit and the Go version, and exit")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, a := range strings.Split(addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			o.redis.Addrs = append(o.redis.Addrs, a)
		}
	}
	o.redis.Password = def.Redis.Password
	// The API's token comes from the environment only (a Secret), never
	// from a flag that ps would show.
	o.apiToken = def.EventLoggerToken
	return o, nil
}

func run(args []string) int {
	// Before the environment is read: --version answers whatever it holds.
	if slices.Contains(args, "--version") || slices.Contains(args, "-version") {
		fmt.Println(version.String("eventlogger"))
		return 0
	}
	o, err := parseFlags(args)
	if err != nil {
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "eventlogger: --log-level %q: %v\n", o.logLevel, err)
		return 2
	}
	// Logs go to stderr; stdout carries only event lines.
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	cat, err := messaging.Config{Mode: messaging.Mode(o.mode), CatalogFile: o.catalogFile}.LoadCatalog()
	if err != nil {
		log.Error("Cannot load the catalog", "error", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	bus, store, fallback, err := openBus(ctx, cat, o, log)
	if err != nil {
		log.Error(err.Error())
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer bus.Close()

	cfg := el.ServiceConfig{
		Catalog: cat, MaxMessageBytes: o.maxMessageBytes, PendingLimit: o.pendingLimit,
		Out: os.Stdout, Log: log, InMemoryFallback: fallback, HealthWindow: eventlog.HealthWindow(o.healthInterval),
		APIToken: o.apiToken, DrainTimeout: o.drainTimeout, Holder: o.holder,
	}
	if o.eventLogFile != "" {
		f, err := os.OpenFile(o.eventLogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			log.Error("Cannot open the event log file", "error", err)
			return 1
		}
		defer f.Close()
		cfg.Sink = f
	}
	svc := el.NewService(cfg, bus, store)
	if o.spoolDir != "" {
		if err := svc.UseSpool(o.spoolDir, o.spoolMaxBytes); err != nil {
			log.Error("Cannot open the spool", "dir", o.spoolDir, "error", err)
			return 1
		}
	} else {
		log.Warn("No spool (" + settings.EnvSpoolDir + "): events waiting for Redis are kept in memory only, and a crash loses them")
	}

	if o.apiToken == "" {
		log.Warn("No API token (" + messaging.EnvEventLoggerToken + "): the state and events API serves anyone who reaches it")
	}
	servers := []struct {
		addr, what string
		h          http.Handler
	}{{o.httpAddr, "api", svc.APIHandler()}, {o.healthAddr, "health", svc.HealthHandler()}}
	if o.healthAddr == "" {
		servers = servers[:1]
		servers[0].h = svc.Handler()
	}
	var running []*http.Server
	for _, sv := range servers {
		ln, err := net.Listen("tcp", sv.addr)
		if err != nil {
			log.Error("Cannot listen", "addr", sv.addr, "error", err)
			return 1
		}
		srv := el.NewServer(sv.h, el.Timeouts{})
		running = append(running, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("HTTP server failed", "server", sv.what, "error", err)
				stop()
			}
		}()
	}
	log.Info("Event logger started", "api", o.httpAddr, "health", o.healthAddr, "mode", cat.Mode, "bus", bus.Kind(), "redis", o.redis.String())

	runErr := svc.Run(ctx)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range running {
		_ = srv.Shutdown(shutdownCtx)
	}
	if runErr != nil {
		log.Error("Event logger stopped", "error", runErr)
		return 1
	}
	log.Info("Event logger stopped")
	return 0
}

// openBus applies the standard's rules. Live: Redis is required; without
// it, the logger refuses to start. Backtest: Redis when it answers, memory
// otherwise (said once, and reported on /readyz and in metrics). The event
// log is kept where the bus is.
func openBus(ctx context.Context, cat messaging.Catalog, o options, log *slog.Logger) (messaging.Bus, eventlog.Store, bool, error) {
	onMemory := func() (messaging.Bus, eventlog.Store) {
		bus := messaging.NewMemoryBus(nil)
		return bus, eventlog.NewMemoryStore(bus, nil)
	}
	if !o.redis.Configured() {
		if cat.Mode == messaging.ModeLive {
			return nil, nil, false, errors.New("eventlogger: Redis is required for live trading: no Redis address configured (" + messaging.EnvRedisAddrs + ")")
		}
		log.Info("No Redis configured: backtest runs on the in-memory bus")
		bus, store := onMemory()
		return bus, store, false, nil
	}
	client, err := messaging.NewRedisClient(o.redis)
	if err != nil {
		return nil, nil, false, err
	}
	bus := messaging.NewRedisBus(client, messaging.RedisBusOptions{KeyPrefix: cat.KeyPrefix})
	store := eventlog.NewRedisStore(client, eventlog.RedisStoreOptions{KeyPrefix: cat.KeyPrefix, HistoryTTL: historyTTL(cat)})
	deadline := time.Now().Add(o.startupTimeout)
	for {
		pctx, cancel := context.WithTimeout(ctx, o.redis.DialTimeout+time.Second)
		err = bus.Ping(pctx)
		cancel()
		if err == nil {
			return bus, store, false, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	_ = bus.Close()
	if cat.Mode == messaging.ModeLive {
		return nil, nil, false, fmt.Errorf("eventlogger: Redis is required for live trading: %s unreachable: %w", o.redis, err)
	}
	log.Warn("Redis unreachable: backtest continues on the in-memory bus", "redis", o.redis.String(), "error", err.Error())
	bus2, store2 := onMemory()
	return bus2, store2, true, nil
}

func historyTTL(cat messaging.Catalog) time.Duration {
	if k, ok := cat.Key(messaging.KeyEventsHistory); ok {
		return k.TTL.Duration
	}
	return 0
}
