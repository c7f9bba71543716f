package eventlog

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
)

// CommandError is a command Redis refused, named with its key (without the
// prefix): "XADD events:history".
type CommandError struct {
	Command string
	Err     error
}

func (e *CommandError) Error() string { return e.Command + ": " + e.Err.Error() }
func (e *CommandError) Unwrap() error { return e.Err }

// Reasons of a write Redis refuses for good: retrying changes nothing until
// someone changes Redis (its ACL, a key's type, its memory, its role).
const (
	WriteRedisPermissionDenied = "RedisPermissionDenied"
	WriteRedisWrongType        = "RedisWrongType"
	WriteRedisOutOfMemory      = "RedisOutOfMemory"
	WriteRedisReadOnly         = "RedisReadOnly"
)

// PermanentReason returns the reason of an error Redis gives for good
// (NOPERM, WRONGTYPE, OOM, READONLY), or "" for any other: connection
// errors, timeouts, LOADING, a failover in progress (MASTERDOWN, TRYAGAIN,
// CLUSTERDOWN), which pass on their own.
func PermanentReason(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	var ce *CommandError
	if errors.As(err, &ce) {
		msg = ce.Err.Error()
	}
	if strings.Contains(msg, "can't run this command") {
		// A command an ACL refuses inside a script (Redis 7.0's words).
		return WriteRedisPermissionDenied
	}
	for _, p := range []struct{ prefix, reason string }{
		{"NOPERM", WriteRedisPermissionDenied},
		{"WRONGTYPE", WriteRedisWrongType},
		{"OOM", WriteRedisOutOfMemory},
		{"READONLY", WriteRedisReadOnly},
	} {
		if strings.HasPrefix(msg, p.prefix) {
			return p.reason
		}
	}
	return ""
}

// IsTransient says an error passes on its own: the connection, a
// timeout, or a server that is loading or changing roles.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	msg := err.Error()
	for _, p := range []string{"LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "BUSY", "redis: client is closed", "connection"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// ScriptCommand names the command of a script that an error stopped, from
// the script's line Redis gives ("@user_script:3"): "PEXPIRE", or "" when
// it cannot tell.
func ScriptCommand(src string, err error) string {
	msg := err.Error()
	i := strings.Index(msg, "@user_script:")
	if i < 0 {
		return ""
	}
	n := 0
	for _, c := range msg[i+len("@user_script:"):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	lines := strings.Split(src, "\n")
	if n < 1 || n > len(lines) {
		return ""
	}
	line := lines[n-1]
	j := strings.Index(line, "redis.call('")
	if j < 0 {
		return ""
	}
	rest := line[j+len("redis.call('"):]
	if k := strings.IndexByte(rest, '\''); k > 0 {
		return strings.ToUpper(rest[:k])
	}
	return ""
}
