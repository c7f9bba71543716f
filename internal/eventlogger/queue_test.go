package eventlogger

import (
	"strconv"
	"testing"

	"github.com/stratops/stratops/internal/eventlog"
)

// TestQueue_BatchesCrossTheAddsInOrderAndLetTheirEntriesGo: without a
// spool, what adds of every size put in comes out once each, in order, in
// batches that cross from one add's entries to the next; an entry taken
// off is cleared where the queue held it (its payload can go), and an
// emptied queue holds nothing.
func TestQueue_BatchesCrossTheAddsInOrderAndLetTheirEntriesGo(t *testing.T) {
	q := newQueue(1 << 20)
	var added [][]queued
	n := 0
	for _, size := range []int{1, 3, 256, 2, 700, 1, 40} {
		entries := make([]queued, size)
		for i := range entries {
			entries[i].entry = eventlog.LogEntry{ID: strconv.Itoa(n)}
			n++
		}
		if _, err := q.add(entries, func(error) {}); err != nil {
			t.Fatal(err)
		}
		added = append(added, entries)
	}
	if q.len() != n {
		t.Fatalf("%d waiting; want %d", q.len(), n)
	}
	next := 0
	for _, size := range []int{2, 5, 100, 256, 256, 256, 256} {
		b, spilled, _ := q.next(nil, size)
		if spilled {
			t.Fatal("spilled without a spool")
		}
		if want := min(size, n-next); len(b) != want {
			t.Fatalf("a batch of %d; want %d", len(b), want)
		}
		for _, e := range b {
			if e.entry.ID != strconv.Itoa(next) {
				t.Fatalf("got %s; want %d", e.entry.ID, next)
			}
			next++
		}
		if _, err := q.done(b, false); err != nil {
			t.Fatal(err)
		}
	}
	if next != n || q.len() != 0 {
		t.Fatalf("%d of %d came out; %d still wait", next, n, q.len())
	}
	for _, entries := range added {
		for _, e := range entries {
			if e.entry.ID != "" {
				t.Fatalf("entry %s still held after it was written", e.entry.ID)
			}
		}
	}
	if q.chunks != nil || q.head != 0 {
		t.Errorf("an empty queue holds %d chunks, head %d", len(q.chunks), q.head)
	}
	if b, _, _ := q.next(nil, 10); len(b) != 0 {
		t.Errorf("an empty queue gave a batch of %d", len(b))
	}
}
