// Package messaging is the Redis messaging standard of stratops as a Go
// package: what a strategy component written in Go imports to talk to the
// other components of its Strategy, and what the operator and the event
// logger are built on. It imports no Kubernetes package.
//
// # Writing a component
//
// A component connects with the configuration the operator put in its
// pod's environment, publishes its events and keeps its latest state:
//
//	c, err := messaging.ConnectFromEnv(ctx, messaging.Options{})
//	if err != nil {
//		return err // Live without Redis: ErrRedisRequired, the standard's fail-fast
//	}
//	defer c.Close(ctx)
//
//	// Subscribe to the upstream channel; events of either shape arrive decoded.
//	_, err = c.Subscribe(ctx, func(ctx context.Context, e messaging.Event) {
//		var position struct{ Trigger string `json:"trigger"` }
//		_ = e.Decode(&position)
//		exposure := calculate(position)
//		// One round trip: the notification, and the key with the catalog's TTL.
//		_ = c.PublishState(ctx, "exposure:calculated", map[string]any{"net_delta_eth": exposure.NetDelta},
//			"exposure:current", exposure)
//	}, "position:updated")
//
// The same code runs in a backtest and live. Live, Redis is required:
// Connect fails without it. In a backtest Redis is optional: without it the
// client runs on an in-process bus (the standard's direct calls) and
// forwards every event it publishes to the Strategy's event logger, so the
// backtest's audit trail is still complete.
//
// # The catalog
//
// Channels are named {component}:{event_type} and keys
// {component}:{data_type}. A Strategy's Catalog lists its channels (with
// the component that publishes on each and those that subscribe) and its
// keys (with their TTL policies: hourly keys 1h, history 24h, config keys
// persistent). Standard returns the standard's own. Names given to a
// Client or a Bus are catalog names; the key prefix of the Strategy is
// added underneath, so that several strategies can share one Redis.
//
// # Messages
//
// A message is a JSON object, in either of the standard's two shapes: the
// envelope of its "Data Formats" section,
//
//	{"timestamp": "2024-05-12T14:00:00Z", "component": "position_monitor", "event": "updated", "metadata": {"trigger": "GAS_FEE_PAID"}}
//
// or the flat payload of its "Component Pub/Sub Patterns", which a Python
// component publishes with json.dumps:
//
//	{"timestamp": "2024-05-12T14:00:00.123456", "trigger": "GAS_FEE_PAID"}
//
// A flat payload's component is the channel's publisher in the catalog and
// its event the channel's {event_type}. Timestamps are RFC 3339 (with "Z"
// or an offset) or ISO 8601 without a zone, read as UTC (ParseTimestamp).
// The event logger skips, and counts as invalid, what is not JSON, not an
// object, or larger than its limit; an object without a usable timestamp
// is logged, stamped with the time it was received, and counted as
// nonconforming. Payloads are kept exactly as they came.
//
// # The pod environment
//
// PodEnv is what the operator hands every pod of a Strategy (STRATOPS_*
// variables, the catalog file and the Redis password from a Secret);
// ConfigFromEnv reads it back. Both sides use this one pair.
package messaging
