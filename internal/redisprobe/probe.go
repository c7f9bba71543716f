package redisprobe

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/pkg/messaging"
)

// Probe names, in the order they run.
const (
	ProbeConnect  = "connect"
	ProbePing     = "ping"
	ProbeRole     = "role"
	ProbeWriteTTL = "write-ttl"
	ProbePubSub   = "pubsub"
	// ProbeCommands runs every command the event logger and the health
	// read-out use, on probe keys, and checks that the logger's own keys
	// hold what it writes there: a too-narrow ACL, a full Redis or a key of
	// the wrong type is caught before rollout.
	ProbeCommands = "commands"
)

// Failure reasons.
const (
	ReasonUnreachable       = "Unreachable"
	ReasonAuthFailed        = "AuthFailed"
	ReasonTLSError          = "TLSError"
	ReasonTimeout           = "Timeout"
	ReasonReadOnlyReplica   = "ReadOnlyReplica"
	ReasonPermissionDenied  = "PermissionDenied"
	ReasonUnexpectedReply   = "UnexpectedReply"
	ReasonError             = "Error"
	ReasonSkipped           = "Skipped"
	ReasonAddressNotAllowed = "AddressNotAllowed"
	ReasonOutOfMemory       = "OutOfMemory"
	ReasonWrongType         = "WrongType"
	// ReasonNotRedis: what answered does not speak the Redis protocol (an
	// HTTP server, an SSH banner): none of what it sent is repeated.
	ReasonNotRedis = "NotRedis"
)

// Result is one probe's outcome.
type Result struct {
	Name    string
	OK      bool
	Reason  string
	Message string
	Latency time.Duration
}

// Report is a round of probes.
type Report struct {
	Probes        []Result
	ServerVersion string
	Role          string
	// Addr is the server's own address for the probe's connection
	// (CLIENT INFO laddr): the master a Sentinel client follows. Empty on
	// a Cluster, or where the user may not run CLIENT INFO.
	Addr string
}

// OK reports whether every probe passed.
func (r Report) OK() bool {
	for _, p := range r.Probes {
		if !p.OK {
			return false
		}
	}
	return len(r.Probes) > 0
}

// Failed returns the first failed probe.
func (r Report) Failed() (Result, bool) {
	for _, p := range r.Probes {
		if !p.OK {
			return p, true
		}
	}
	return Result{}, false
}

// Options of a probe round.
type Options struct {
	// Prefix is the strategy's key prefix: probe keys and channels live
	// under it ("<prefix>stratops:probe:<random>") and expire on their own.
	Prefix string
	// Timeout bounds each probe. default: 2s.
	Timeout time.Duration
	// Cluster says the client talks to a Redis Cluster.
	Cluster bool
	// Observe, when set, is told each probe's outcome (for metrics).
	Observe func(Result)
}

// probeKeyTTL is how long a probe key lives if nothing deletes it.
const probeKeyTTL = 30 * time.Second

// Run runs every probe in order; after a failure the rest are skipped and
// say so. Each probe has its own deadline.
func Run(ctx context.Context, c redis.UniversalClient, o Options) Report {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	var rep Report
	steps := []struct {
		name string
		fn   func(ctx context.Context) (string, error)
	}{
		{ProbeConnect, func(ctx context.Context) (string, error) {
			info, err := c.Info(ctx, "server").Result()
			if err != nil {
				return "", err
			}
			rep.ServerVersion = infoField(info, "redis_version")
			if !o.Cluster {
				if ci, err := c.Do(ctx, "CLIENT", "INFO").Text(); err == nil {
					rep.Addr = clientInfoField(ci, "laddr")
				}
			}
			return "connected to Redis " + rep.ServerVersion, nil
		}},
		{ProbePing, func(ctx context.Context) (string, error) {
			v, err := c.Ping(ctx).Result()
			if err != nil {
				return "", err
			}
			if v != "PONG" {
				return "", &replyError{"PING was not answered PONG"}
			}
			return "PONG", nil
		}},
		{ProbeRole, func(ctx context.Context) (string, error) {
			if o.Cluster {
				rep.Role = "master"
				return "cluster: every slot is written on its master", nil
			}
			v, err := c.Do(ctx, "ROLE").Slice()
			if err != nil {
				return "", err
			}
			role, _ := v[0].(string)
			if role == "slave" {
				role = "replica"
			}
			rep.Role = role
			if role != "master" {
				return "", &roleError{role}
			}
			return "master", nil
		}},
		{ProbeWriteTTL, func(ctx context.Context) (string, error) {
			key := o.Prefix + messaging.ProbeNamePrefix + randomSuffix()
			var ttl *redis.DurationCmd
			_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, "1", probeKeyTTL)
				ttl = p.TTL(ctx, key)
				return nil
			})
			if err != nil {
				return "", err
			}
			if d := ttl.Val(); d <= 0 || d > probeKeyTTL {
				return "", &replyError{fmt.Sprintf("SET with EX %s read back TTL %s", probeKeyTTL, d)}
			}
			// The key's random part stays out of the message, so that a
			// passing round reads the same as the last one.
			return fmt.Sprintf("SET %s%s<random> EX %d, TTL read back", o.Prefix, messaging.ProbeNamePrefix, int(probeKeyTTL.Seconds())), nil
		}},
		{ProbePubSub, func(ctx context.Context) (string, error) {
			ch := o.Prefix + messaging.ProbeNamePrefix + randomSuffix()
			ps := c.Subscribe(ctx, ch)
			defer ps.Close()
			if _, err := ps.ReceiveTimeout(ctx, o.Timeout); err != nil {
				return "", err
			}
			if err := c.Publish(ctx, ch, "probe").Err(); err != nil {
				return "", err
			}
			msg, err := ps.ReceiveTimeout(ctx, o.Timeout)
			if err != nil {
				return "", err
			}
			if m, ok := msg.(*redis.Message); !ok || m.Payload != "probe" {
				return "", &replyError{"the message received on the probe channel is not the one published"}
			}
			return "published and received on " + o.Prefix + messaging.ProbeNamePrefix + "<random>", nil
		}},
	}
	steps = append(steps, struct {
		name string
		fn   func(ctx context.Context) (string, error)
	}{ProbeCommands, func(ctx context.Context) (string, error) { return probeCommands(ctx, c, o.Prefix) }})
	failed := ""
	for _, s := range steps {
		if failed != "" {
			rep.Probes = append(rep.Probes, Result{Name: s.name, Reason: ReasonSkipped, Message: "not run: " + failed + " failed"})
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, o.Timeout)
		start := time.Now()
		msg, err := s.fn(pctx)
		cancel()
		r := Result{Name: s.name, OK: err == nil, Message: msg, Latency: time.Since(start)}
		if err != nil {
			r.Reason = Classify(err)
			r.Message = describe(r.Reason, err)
			failed = s.name
		}
		if o.Observe != nil {
			o.Observe(r)
		}
		rep.Probes = append(rep.Probes, r)
	}
	return rep
}

// loggerCommands are the commands the event logger and the health
// read-out send, besides those the other probes check: the least-privilege
// ACL the README gives allows exactly these and those.
var loggerCommands = []string{"XADD", "EXPIRE", "XREVRANGE", "XRANGE", "MULTI", "EXEC", "HINCRBY", "HSET", "HGETALL", "PTTL", "GET", "TYPE", "PUBSUB NUMSUB",
	"EVALSHA/EVAL with GET, SET PX, PEXPIRE, XADD, EXPIRE, DEL"}

// leaseProbe runs, on probe keys, the commands of the logger's lease and
// fenced history scripts.
var leaseProbe = redis.NewScript(leaseProbeSrc)

const leaseProbeSrc = `
redis.call('SET', KEYS[1], 'probe', 'PX', 30000)
redis.call('PEXPIRE', KEYS[1], 30000)
local v = redis.call('GET', KEYS[1])
redis.call('XADD', KEYS[2], 'MINID', '~', '0', '*', 'probe', v)
redis.call('EXPIRE', KEYS[2], 30)
redis.call('DEL', KEYS[1])
return 1`

// probeCommands sends each command of loggerCommands on probe keys (which
// expire on their own), naming the one Redis refuses, and checks the
// types of events:history (a stream) and channel:stats (a hash).
func probeCommands(ctx context.Context, c redis.UniversalClient, prefix string) (string, error) {
	base := prefix + messaging.ProbeNamePrefix + randomSuffix()
	stream, hash := base+":stream", base+":hash"
	if _, cluster := c.(*redis.ClusterClient); cluster {
		// One slot for the transaction's keys.
		stream, hash = "{"+base+"}:stream", "{"+base+"}:hash"
	}
	hist, stats := prefix+messaging.KeyEventsHistory, prefix+messaging.KeyChannelStats
	secs := int(probeKeyTTL.Seconds())
	run := func(name string, fn func(p redis.Pipeliner)) error {
		cmds, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error { fn(p); return nil })
		if err != nil && !errors.Is(err, redis.Nil) {
			// The command Redis refused while queueing, not the EXECABORT
			// every other command of the transaction then carries.
			for _, cmd := range cmds {
				if cerr := cmd.Err(); cerr != nil && !errors.Is(cerr, redis.Nil) && !strings.HasPrefix(cerr.Error(), "EXECABORT") {
					return fmt.Errorf("%s: %w", strings.ToUpper(cmd.Name()), cerr)
				}
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	if err := run("MULTI/EXEC", func(p redis.Pipeliner) {
		p.XAdd(ctx, &redis.XAddArgs{Stream: stream, MinID: "0", Approx: true, Values: []any{"probe", "1"}})
		p.Expire(ctx, stream, probeKeyTTL)
	}); err != nil {
		return "", err
	}
	var histType, statsType *redis.StatusCmd
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.XRevRangeN(ctx, stream, "+", "-", 1)
		p.HIncrBy(ctx, hash, "probe", 1)
		p.HSet(ctx, hash, "probe_at", 1)
		p.Expire(ctx, hash, probeKeyTTL)
		p.HGetAll(ctx, hash)
		p.PTTL(ctx, stream)
		p.Get(ctx, base+":none")
		histType = p.Type(ctx, hist)
		statsType = p.Type(ctx, stats)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		for _, cmd := range cmds {
			if cerr := cmd.Err(); cerr != nil && !errors.Is(cerr, redis.Nil) {
				return "", fmt.Errorf("%s: %w", strings.ToUpper(cmd.Name()), cerr)
			}
		}
		return "", err
	}
	if _, cluster := c.(*redis.ClusterClient); !cluster {
		if err := c.PubSubNumSub(ctx, base).Err(); err != nil {
			return "", fmt.Errorf("PUBSUB NUMSUB: %w", err)
		}
	}
	if err := c.XRangeN(ctx, stream, "-", "+", 1).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("XRANGE: %w", err)
	}
	if err := leaseProbe.Run(ctx, c, []string{stream + ":lease", stream}).Err(); err != nil {
		if cmd := eventlog.ScriptCommand(leaseProbeSrc, err); cmd != "" {
			return "", &scriptError{fmt.Sprintf("%s, in the logger's lease and history scripts: %v", cmd, err), err}
		}
		return "", fmt.Errorf("the logger's lease script (EVALSHA): %w", err)
	}
	for _, k := range []struct {
		key, want, got, what string
	}{
		{messaging.KeyEventsHistory, "stream", histType.Val(), "the event logger's history"},
		{messaging.KeyChannelStats, "hash", statsType.Val(), "the event logger's channel stats"},
	} {
		if k.got != "none" && k.got != k.want {
			return "", &wrongTypeError{fmt.Sprintf("%s%s holds a %s; %s is a %s there (delete or rename the key)", prefix, k.key, k.got, k.what, k.want)}
		}
	}
	return fmt.Sprintf("%s on %s%s<random> (EX %d); %s%s and %s%s hold what the logger writes",
		strings.Join(loggerCommands, ", "), prefix, messaging.ProbeNamePrefix, secs, prefix, messaging.KeyEventsHistory, prefix, messaging.KeyChannelStats), nil
}

// scriptError is a command refused inside a script.
type scriptError struct {
	msg string
	err error
}

func (e *scriptError) Error() string { return e.msg }
func (e *scriptError) Unwrap() error { return e.err }

// wrongTypeError is a key of the logger's that holds another type.
type wrongTypeError struct{ msg string }

func (e *wrongTypeError) Error() string { return e.msg }

type replyError struct{ msg string }

func (e *replyError) Error() string { return e.msg }

type roleError struct{ role string }

func (e *roleError) Error() string {
	return fmt.Sprintf("Redis is a %s: live trading needs a writable master", e.role)
}

// notRedis reports whether go-redis could not read the reply as the Redis
// protocol.
func notRedis(msg string) bool {
	for _, m := range []string{"redis: invalid reply", "redis: can't parse", "redis: unexpected", "redis: got ", "invalid reply"} {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// Classify maps a go-redis error to a stable reason.
func Classify(err error) string {
	var re *roleError
	var rp *replyError
	var netErr net.Error
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recordErr tls.RecordHeaderError
	msg := err.Error()
	switch {
	case IsAddressNotAllowed(err):
		return ReasonAddressNotAllowed
	case errors.As(err, &re):
		return ReasonReadOnlyReplica
	case errors.As(err, &rp):
		return ReasonUnexpectedReply
	case notRedis(msg):
		return ReasonNotRedis
	case strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "NOAUTH"),
		strings.Contains(msg, "invalid password"), strings.Contains(msg, "invalid username-password"):
		return ReasonAuthFailed
	case strings.HasPrefix(msg, "NOPERM"), strings.Contains(msg, ": NOPERM"), strings.Contains(msg, "can't run this command"):
		return ReasonPermissionDenied
	case strings.HasPrefix(msg, "OOM"), strings.Contains(msg, ": OOM"):
		return ReasonOutOfMemory
	case errors.As(err, new(*wrongTypeError)), strings.HasPrefix(msg, "WRONGTYPE"), strings.Contains(msg, ": WRONGTYPE"):
		return ReasonWrongType
	case strings.HasPrefix(msg, "READONLY"):
		return ReasonReadOnlyReplica
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr),
		errors.As(err, &recordErr), strings.Contains(msg, "tls:"):
		return ReasonTLSError
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return ReasonTimeout
	case errors.As(err, &netErr), strings.Contains(msg, "connection refused"),
		strings.Contains(msg, "no such host"), errors.Is(err, redis.ErrClosed):
		return ReasonUnreachable
	}
	return ReasonError
}

// describe is a failed probe's message. It says the failure in words and
// what this code knows (the command, the key); of what the server sent, it
// keeps only the code of a Redis error reply (NOAUTH, WRONGPASS, NOPERM
// with the command it names). Whatever answered may not be Redis, and a
// Strategy's author chooses the address: an HTTP banner, a login prompt or
// anything else a server sends never reaches status, events or logs.
func describe(reason string, err error) string {
	var rerr redis.Error
	if errors.As(err, &rerr) {
		context := strings.TrimSuffix(strings.TrimSuffix(err.Error(), rerr.Error()), ": ")
		what := map[string]string{
			ReasonAuthFailed:       "authentication failed",
			ReasonPermissionDenied: "the Redis user may not do this",
			ReasonOutOfMemory:      "Redis is out of memory and refuses writes (maxmemory with noeviction)",
			ReasonWrongType:        "a key holds another type",
			ReasonReadOnlyReplica:  "Redis is a read-only replica",
		}[reason]
		parts := []string{}
		for _, p := range []string{what, context, "Redis replied " + replyCode(rerr.Error())} {
			if p != "" {
				parts = append(parts, p)
			}
		}
		return strings.Join(parts, ": ")
	}
	switch reason {
	case ReasonNotRedis:
		return "the server does not answer in the Redis protocol (is this address a Redis?)"
	case ReasonTLSError:
		return tlsProblem(err)
	case ReasonError:
		return "the check failed in an unexpected way"
	}
	// Connection errors, timeouts and this package's own errors: the
	// words are the operating system's and ours.
	return err.Error()
}

// replyCode is the code of a Redis error reply, and for NOPERM the command
// it names: "WRONGPASS", "NOPERM xadd".
func replyCode(msg string) string {
	code, _, _ := strings.Cut(msg, " ")
	if !replyCodePattern.MatchString(code) {
		return "an error"
	}
	if code == "NOPERM" {
		if m := nopermCommand.FindStringSubmatch(msg); m != nil {
			return code + " " + m[1]
		}
	}
	return code
}

var (
	replyCodePattern = regexp.MustCompile(`^[A-Z]{2,20}$`)
	nopermCommand    = regexp.MustCompile(`the '([a-z|]{1,40})' command`)
)

// tlsProblem says what went wrong in a TLS handshake, without the names
// and values the server's certificate carries.
func tlsProblem(err error) string {
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var certErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.As(err, &unknownAuth), strings.Contains(err.Error(), "unknown authority"):
		return "TLS: the server's certificate is not signed by the CA given (spec.redis.tls.caSecretRef)"
	case errors.As(err, &hostErr):
		return "TLS: the server's certificate is not valid for the name dialled (spec.redis.tls.serverName)"
	case errors.As(err, &recordErr):
		return "TLS: the server did not answer with TLS"
	case errors.As(err, &certErr):
		return "TLS: the server's certificate could not be verified"
	case strings.Contains(err.Error(), "certificate required"), strings.Contains(err.Error(), "bad certificate"):
		return "TLS: the server refused this client's certificate, or wants one (spec.redis.tls.clientCertSecretRef)"
	}
	return "TLS: the handshake failed"
}

// clientInfoField reads a field of CLIENT INFO's "k=v k=v" line.
// clientInfoField is a field of CLIENT INFO's reply, copied: a report is
// kept until the next round, and a slice of the reply would keep all of it.
func clientInfoField(ci, name string) string {
	for _, f := range strings.Fields(ci) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return strings.Clone(v)
		}
	}
	return ""
}

// infoField is a field of INFO's reply, copied (see clientInfoField).
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return strings.Clone(v)
		}
	}
	return ""
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
