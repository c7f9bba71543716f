// Package eventlogger is the Redis messaging standard as code: the catalog
// of channels, keys and TTL policies that the operator and the event logger
// share, the message codec, the Redis and in-memory buses, and the event
// logger service. It links no controller-runtime, so the event logger binary
// stays small.
package eventlogger
