// Package redisprobe connects to a strategy's Redis and tells whether it
// can be trusted: readiness probes (connect, ping, role, write-ttl, pubsub)
// with reasons, and the health of the strategy's channels and keys, read
// with pipelined commands. Clients are cached per connection setting and
// shared. It knows nothing of reconciling.
package redisprobe
