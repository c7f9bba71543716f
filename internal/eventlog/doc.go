// Package eventlog is the event logger's storage protocol in Redis: the
// entries of events:history and their events:logged notifications, the
// fenced lease that lets exactly one replica record, and the per-channel
// stats hash. The logger writes them (internal/eventlogger); the operator
// reads the stats and the lease's holder (internal/redisprobe). None of it
// is a component's business, so none of it is in package messaging.
package eventlog
