package messaging_test

import (
	"context"
	"fmt"
	"time"

	"github.com/stratops/stratops/pkg/messaging"
)

// A component publishes its event and its latest state with the catalog's
// TTL, and the next component of the chain receives the event decoded. On
// a backtest without Redis this runs on the in-process bus; live, the same
// code runs on Redis.
func Example() {
	ctx := context.Background()
	c, err := messaging.Connect(ctx, messaging.Config{Mode: messaging.ModeBacktest}, messaging.Options{})
	if err != nil {
		panic(err)
	}
	defer c.Close(ctx)

	got := make(chan messaging.Event, 1)
	// The exposure monitor listens to the position monitor.
	if _, err := c.Subscribe(ctx, func(_ context.Context, e messaging.Event) { got <- e }, "position:updated"); err != nil {
		panic(err)
	}
	// The position monitor publishes, and keeps its snapshot for an hour.
	err = c.PublishState(ctx, "position:updated", map[string]any{"trigger": "GAS_FEE_PAID"},
		"position:snapshot", map[string]any{"wallet": map[string]float64{"eth": 12.5}})
	if err != nil {
		panic(err)
	}
	e := <-got
	var md struct{ Trigger string }
	_ = e.Decode(&md)
	fmt.Println(e.Component, e.Event, md.Trigger)

	st, _ := c.State(ctx, "position:snapshot")
	fmt.Println(st.TTL.Round(time.Minute), !st.Timestamp.IsZero())
	// Output:
	// position_monitor updated GAS_FEE_PAID
	// 1h0m0s true
}

// A flat payload, as a Python component writes it with json.dumps, is an
// event too: its component is the channel's publisher and its event the
// channel's event type. The timestamp of datetime.utcnow().isoformat() has
// no zone and is read as UTC.
func ExampleCatalog_DecodeEvent() {
	cat := messaging.Standard(messaging.ModeLive)
	e, err := cat.DecodeEvent("exposure:calculated",
		[]byte(`{"timestamp": "2024-05-12T14:00:00.123456", "net_delta_eth": -5.12}`), messaging.DecodeOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println(e.Shape, e.Component, e.Event, e.Timestamp.Format(time.RFC3339Nano))
	fmt.Println(string(e.Payload))
	// Output:
	// flat exposure_monitor calculated 2024-05-12T14:00:00.123456Z
	// {"timestamp": "2024-05-12T14:00:00.123456", "net_delta_eth": -5.12}
}

// What the event logger skips as invalid, and what it logs but counts as
// nonconforming.
func ExampleCatalog_DecodeEvent_invalid() {
	cat := messaging.Standard(messaging.ModeLive)
	for _, payload := range []string{`not json`, `["an", "array"]`, `{"pnl_cumulative": 1238.45}`} {
		e, err := cat.DecodeEvent("pnl:calculated", []byte(payload), messaging.DecodeOptions{})
		if err != nil {
			fmt.Println("invalid:", err)
			continue
		}
		fmt.Println("logged, nonconforming:", e.Nonconforming)
	}
	// Output:
	// invalid: messaging: invalid_json: not valid JSON
	// invalid: messaging: not_object: a message must be a JSON object
	// logged, nonconforming: missing_timestamp
}

// The operator hands every pod of a Strategy its environment; a component
// reads it back with ConfigFromEnv (ConnectFromEnv does both).
func ExamplePodEnv() {
	env := messaging.PodEnv{
		Mode:      messaging.ModeLive,
		Catalog:   messaging.FileRef{ConfigMap: "eth-basis-catalog", Key: messaging.CatalogFileName, Path: messaging.CatalogPath},
		KeyPrefix: "eth-basis:",
		Redis: &messaging.RedisEnv{Addrs: []string{"redis.trading.svc:6379"},
			Password: &messaging.SecretKeyRef{Name: "redis-auth", Key: "password"}},
	}
	for _, v := range env.Env() {
		switch {
		case v.Secret != nil:
			fmt.Printf("%s from Secret %s key %s\n", v.Name, v.Secret.Name, v.Secret.Key)
		default:
			fmt.Printf("%s=%s\n", v.Name, v.Value)
		}
	}
	// Output:
	// STRATOPS_MODE=Live
	// STRATOPS_CATALOG_FILE=/etc/stratops/catalog.json
	// STRATOPS_KEY_PREFIX=eth-basis:
	// STRATOPS_REDIS_ADDRS=redis.trading.svc:6379
	// STRATOPS_REDIS_PASSWORD from Secret redis-auth key password
}
