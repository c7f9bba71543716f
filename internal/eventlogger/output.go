package eventlogger

import (
	"io"
	"log/slog"
	"sync"
)

// output writes one JSON line per logged event to the output (stdout) and
// the sink (a file), in the order it is given them. It owns its lock.
type output struct {
	mu   sync.Mutex
	out  io.Writer
	sink io.Writer
	log  *slog.Logger
	buf  []byte
}

func (o *output) write(entries []queued) {
	o.mu.Lock()
	defer o.mu.Unlock()
	// One write for the batch: a line each is a system call each.
	o.buf = o.buf[:0]
	for _, q := range entries {
		o.buf = append(q.entry.AppendJSON(o.buf), '\n')
	}
	if _, err := o.out.Write(o.buf); err != nil {
		o.log.Error("Writing event lines", "error", err)
	}
	if o.sink != nil {
		if _, err := o.sink.Write(o.buf); err != nil {
			o.log.Error("Writing event lines to the sink", "error", err)
		}
	}
	if cap(o.buf) > 1<<20 {
		o.buf = nil // a burst's buffer is not kept
	}
}
