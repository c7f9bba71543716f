package redistest

import "time"

// GapSlack is how far outside a reported gap a message published then
// still counts as in it: the gap's ends are the subscriber's clock, the
// message's the publisher's.
const GapSlack = 50 * time.Millisecond

// Span is a time a logger reported a gap: from Start to End.
type Span struct{ Start, End time.Time }

// Tally compares what Redis took (a sequence number and when it was
// published) with what a history holds (how many times each sequence
// number is there) and the gaps the loggers reported: how many messages
// are missing, how many of those were published outside every gap, and
// how many are there more than once.
func Tally(took map[int]time.Time, seen map[int]int, gaps []Span) (lost, outside, dup int) {
	for seq, at := range took {
		switch n := seen[seq]; {
		case n > 1:
			dup++
		case n == 0:
			lost++
			in := false
			for _, g := range gaps {
				in = in || (!at.Before(g.Start.Add(-GapSlack)) && !at.After(g.End.Add(GapSlack)))
			}
			if !in {
				outside++
			}
		}
	}
	return lost, outside, dup
}
