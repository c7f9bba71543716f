package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/pkg/messaging"
)

// The event logger's lease: with several replicas, exactly one records
// what the channels carry. It is a key holding "<token>|<holder>" with a
// TTL, taken with SET NX, renewed by its holder, and checked by the same
// script that writes the history (fencing): a holder that lost it (paused
// past its TTL, cut off from Redis) cannot write channel events, even if
// it still thinks it leads.

// ErrFenced is a write refused because the writer does not hold the lease.
var ErrFenced = errors.New("eventlog: fenced: this logger does not hold the lease")

// LeaseKey is the lease's key: on the hash slot of events:history, so that
// the script that checks it and writes the history runs on a Cluster too.
func (b *RedisStore) LeaseKey() string { return LeaseKey(b.prefix) }

// LeaseKey is the event logger's lease key for a key prefix.
func LeaseKey(prefix string) string {
	return sameSlot(prefix+messaging.KeyEventsHistory, ":"+messaging.ReservedComponent+":lease")
}

// LeaseHolderName is the holder (the pod's name) of a lease value.
func LeaseHolderName(value string) string {
	if i := strings.IndexByte(value, '|'); i >= 0 {
		return value[i+1:]
	}
	return value
}

// sameSlot names a key on the hash slot of key: key's hash tag, or all of
// key as one.
func sameSlot(key, suffix string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return "{" + key[i+1:i+1+j] + "}" + suffix
		}
	}
	return "{" + key + "}" + suffix
}

var acquireScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, ARGV[1]}
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, v}
end
return {0, v}`)

// AcquireLease takes the lease for value (renewing it when value holds
// it); held is false when another value holds it, and holder is that one.
func (b *RedisStore) AcquireLease(ctx context.Context, value string, ttl time.Duration) (held bool, holder string, err error) {
	res, err := acquireScript.Run(ctx, b.client, []string{b.LeaseKey()}, value, ttl.Milliseconds()).Slice()
	if err != nil {
		return false, "", &CommandError{Command: "EVALSHA lease " + strings.TrimPrefix(b.LeaseKey(), b.prefix), Err: err}
	}
	if len(res) != 2 {
		return false, "", fmt.Errorf("eventlog: lease: unexpected reply %v", res)
	}
	n, _ := res[0].(int64)
	h, _ := res[1].(string)
	return n == 1, h, nil
}

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// ReleaseLease gives the lease up, when value holds it, so that a standby
// takes over at once rather than when it expires.
func (b *RedisStore) ReleaseLease(ctx context.Context, value string) error {
	return releaseScript.Run(ctx, b.client, []string{b.LeaseKey()}, value).Err()
}

// LeaseHolder is the lease's value, "" when no one holds it.
func (b *RedisStore) LeaseHolder(ctx context.Context) (string, error) {
	v, err := b.client.Get(ctx, b.LeaseKey()).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// recordScript writes a batch of history entries when the lease is
// ARGV[1] (or, with ARGV[1] empty, whoever holds it: entries only this
// logger has), trimming and keeping the TTL, then publishes each entry's
// events:logged notification on ARGV[4], in one atomic step and one round
// trip: a notification is never sent for an entry the history lacks, and
// never costs a round trip of its own.
var recordScript = redis.NewScript(recordSrc)

const recordSrc = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return redis.error_reply('FENCED this logger does not hold the lease')
end
local i = 5
local n = 0
local notes = {}
while i <= #ARGV do
  local nf = tonumber(ARGV[i])
  redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', unpack(ARGV, i + 1, i + nf))
  notes[#notes + 1] = ARGV[i + nf + 1]
  i = i + nf + 2
  n = n + 1
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
for _, note in ipairs(notes) do
  local r = redis.pcall('PUBLISH', ARGV[4], note)
  if type(r) == 'table' and r.err then
    return {n, r.err}
  end
end
return {n, ''}`

// RecordFenced is Record through the lease: the history entries are
// written only while fence holds the lease (an empty fence writes
// whoever holds it), with their notifications, in one round trip.
// ErrFenced when it does not.
func (b *RedisStore) RecordFenced(ctx context.Context, entries []LogEntry, fence string) error {
	if len(entries) == 0 {
		return nil
	}
	buf := recordBufs.Get().(*recordBuf)
	defer buf.put()
	// EVALSHA <sha> 2 <history> <lease> <fence> <minID> <ttl> <events:logged>,
	// then per entry: its field count, its fields, its notification.
	args := append(buf.args[:0], "evalsha", recordScript.Hash(), 2, b.name(messaging.KeyEventsHistory), b.LeaseKey(),
		fence, strconv.FormatInt(b.now().Add(-b.retention).UnixMilli(), 10), int64(b.historyTTL.Seconds()),
		b.name(messaging.ChannelEventsLogged))
	text := buf.text[:0]
	for _, e := range entries {
		nf := len(args)
		args = append(args, 0)
		args, text = appendStreamValues(args, text, e)
		args[nf] = len(args) - nf - 1
		start := len(text)
		text = appendNotification(text, e)
		args = append(args, text[start:len(text):len(text)])
	}
	buf.args, buf.text = args, text
	res, err := b.client.Do(ctx, args...).Slice()
	if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		// Not loaded on this server yet (a restart, a failover): the
		// source, which Redis caches for the next EVALSHA.
		args[0], args[1] = "eval", recordSrc
		res, err = b.client.Do(ctx, args...).Slice()
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "FENCED") {
			return ErrFenced
		}
		if IsTransient(err) {
			return fmt.Errorf("eventlog: record %d events: %w", len(entries), err)
		}
		cmd := ScriptCommand(recordSrc, err)
		if cmd == "" {
			cmd = "EVALSHA"
		}
		return fmt.Errorf("eventlog: record %d events: %w", len(entries), &CommandError{Command: cmd + " " + messaging.KeyEventsHistory + " (the fenced history script)", Err: err})
	}
	if len(res) == 2 {
		if refused, _ := res[1].(string); refused != "" {
			// The history has the entries; their notifications are sent
			// again (Notify) without writing them twice.
			return &NotifyError{Events: len(entries), Err: &CommandError{Command: "PUBLISH " + messaging.ChannelEventsLogged, Err: errors.New(refused)}}
		}
	}
	return nil
}

// recordBuf holds a batch's script arguments and the bytes they point
// into (timestamps, notifications), kept for the next batch: made anew for
// each, with the copy go-redis's Script made of them, they were half of
// the logger's allocations in a burst, and the garbage collector's work.
// go-redis keeps none of them once the command returns.
type recordBuf struct {
	args []any
	text []byte
}

var recordBufs = sync.Pool{New: func() any { return new(recordBuf) }}

// put clears what the arguments point to and returns the buffer to the
// pool; one grown past a large batch's size is let go.
func (r *recordBuf) put() {
	if cap(r.args) > 1<<16 || cap(r.text) > 1<<22 {
		return
	}
	clear(r.args)
	recordBufs.Put(r)
}

// HistorySince returns the channel and message of every history entry
// written since t (the stream's IDs are times), oldest first.
func (b *RedisStore) HistorySince(ctx context.Context, t time.Time) ([]LogEntry, error) {
	msgs, err := b.client.XRange(ctx, b.name(messaging.KeyEventsHistory), strconv.FormatInt(t.UnixMilli(), 10), "+").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("eventlog: read history: %w", err)
	}
	out := make([]LogEntry, 0, len(msgs))
	for _, m := range msgs {
		str := func(k string) string { s, _ := m.Values[k].(string); return s }
		out = append(out, LogEntry{ID: str("id"), Channel: str("channel"), Event: messaging.Event{Payload: []byte(str("message"))}})
	}
	return out, nil
}
