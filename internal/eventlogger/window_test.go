package eventlogger

import (
	"testing"
	"time"
)

func TestWindow_CountsTheRecentPastAndForgetsTheRest(t *testing.T) {
	w := newWindow(time.Minute)
	t0 := time.Date(2024, 5, 12, 14, 0, 0, 0, time.UTC)
	// 99 events 1ms late and one 2s late, one invalid message, and one
	// nonconforming event (no lag).
	for i := range 99 {
		w.valid("position:updated", t0.Add(time.Duration(i)*100*time.Millisecond), time.Millisecond)
	}
	w.valid("position:updated", t0.Add(10*time.Second), 2*time.Second)
	w.valid("position:updated", t0.Add(10*time.Second), -1)
	w.invalid("position:updated", t0.Add(11*time.Second))

	got := w.stats(t0.Add(20 * time.Second))["position:updated"]
	if got.Messages != 101 || got.Invalid != 1 || got.LagSamples != 100 {
		t.Fatalf("window %+v", got)
	}
	within := func(d, want time.Duration) bool { return d >= want && d <= want*6/5 }
	if !within(got.LagP50, time.Millisecond) {
		t.Fatalf("p50 %v, want about 1ms", got.LagP50)
	}
	if !within(got.LagP99, time.Millisecond) {
		t.Fatalf("p99 %v: 99 of 100 were 1ms late", got.LagP99)
	}
	// Past the window, the old traffic is gone.
	if got := w.stats(t0.Add(2 * time.Minute)); len(got) != 0 {
		t.Fatalf("a window two minutes later still holds %+v", got)
	}
	// The late event alone decides the p99 of a window that holds it with
	// fewer than a hundred others.
	w.valid("risk:calculated", t0.Add(3*time.Minute), 2*time.Second)
	w.valid("risk:calculated", t0.Add(3*time.Minute), time.Millisecond)
	if got := w.stats(t0.Add(3 * time.Minute))["risk:calculated"]; !within(got.LagP99, 2*time.Second) || !within(got.LagP50, time.Millisecond) {
		t.Fatalf("risk:calculated %+v", got)
	}
}
