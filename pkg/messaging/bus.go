package messaging

import (
	"context"
	"errors"
	"time"
)

// ErrKeyNotFound is returned by Get for a key that does not exist (or
// expired).
var ErrKeyNotFound = errors.New("messaging: key not found")

// Bus is where a strategy's messages travel and its state is kept: Redis in
// live (and in a backtest that has it), memory otherwise. Names given to a
// Bus are catalog names; the bus adds the key prefix, so that nothing it
// does leaves the strategy's prefix. Components use it through a Client.
type Bus interface {
	// Kind is "redis" or "memory".
	Kind() string
	// Publish sends payload on a channel.
	Publish(ctx context.Context, channel string, payload []byte) error
	// PublishState publishes a notification and stores the matching key
	// with its TTL (0: persistent), in one round trip: the standard's
	// pattern for every component.
	PublishState(ctx context.Context, channel string, msg []byte, key string, value []byte, ttl time.Duration) error
	// Subscribe listens to channels. It returns once the subscription is
	// confirmed, so a publish made after it returns is received.
	Subscribe(ctx context.Context, channels ...string) (Subscription, error)
	// Set stores a key with its TTL (0: persistent).
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Get returns a key's value and remaining TTL (negative: no expiry).
	Get(ctx context.Context, key string) ([]byte, time.Duration, error)
	// Ping checks the bus can be used.
	Ping(ctx context.Context) error
	// Close releases the bus.
	Close() error
}

// Subscription delivers messages of the channels it listens to.
type Subscription interface {
	// C delivers messages; it is closed when the subscription is.
	C() <-chan Delivery
	Close() error
}

// Delivery is one message received on a channel (catalog name).
type Delivery struct {
	Channel string
	Payload []byte
}
