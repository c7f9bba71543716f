package eventlog

import (
	"testing"
	"time"

	"github.com/stratops/stratops/pkg/messaging"
)

func TestStats_WhatTheLoggerWritesTheOperatorReads(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, redisServer.Addr)
	bus := NewRedisStore(c, RedisStoreOptions{KeyPrefix: prefixFor(t)})
	at := time.UnixMilli(time.Now().UnixMilli()).UTC()
	for range 2 {
		err := bus.WriteStats(ctx, StatsUpdate{
			Counters: map[string]ChannelStats{"position:updated": {Messages: 5, Invalid: 1, Nonconforming: 2, LastMessageTime: at}},
			Windows: map[string]WindowStats{
				"position:updated": {Messages: 5, Invalid: 1, LagSamples: 3, LagP50: 1500 * time.Microsecond, LagP99: 20 * time.Millisecond},
				"risk:calculated":  {},
			},
			WindowLength: time.Minute, At: at,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	st := ParseStats(c.HGetAll(ctx, prefixFor(t)+messaging.KeyChannelStats).Val())
	if got := st.Channels["position:updated"]; got != (ChannelStats{Messages: 10, Invalid: 2, Nonconforming: 4, LastMessageTime: at}) {
		t.Fatalf("counters %+v: they add up", got)
	}
	w, ok := st.Window("position:updated", at.Add(time.Second))
	if !ok || w != (WindowStats{Messages: 5, Invalid: 1, LagSamples: 3, LagP50: 1500 * time.Microsecond, LagP99: 20 * time.Millisecond}) {
		t.Fatalf("window %+v (%v): it is replaced, not added", w, ok)
	}
	if w.InvalidRatio() != 1.0/6 {
		t.Fatalf("invalid ratio %v", w.InvalidRatio())
	}
	if _, ok := st.Window("position:updated", at.Add(10*time.Minute)); ok {
		t.Fatal("a window long past its end (a logger that stopped) still counts")
	}
	if _, ok := st.Channels["_window"]; ok {
		t.Fatal("the window's own fields read as a channel")
	}
}
