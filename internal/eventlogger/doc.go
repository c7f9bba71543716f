// Package eventlogger is the standard's Event Logger service, as the
// operator deploys it for each Strategy: it listens to the Strategy's
// channels, logs every valid event (output lines, events:history, then
// events:logged), skips and counts what is not an event, keeps the
// per-channel stats the operator reads, and serves state, ingest, health
// and metrics over HTTP. Each part owns its state (queue and spool,
// writer, lease, counters, readiness, API); Service composes them. The
// catalog, the codec and the buses are package messaging's; this package
// imports no Kubernetes package, so the logger binary stays small.
package eventlogger
