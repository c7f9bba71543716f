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
	for _, q := range entries {
		o.buf = append(q.entry.AppendJSON(o.buf[:0]), '\n')
		if _, err := o.out.Write(o.buf); err != nil {
			o.log.Error("Writing event line", "error", err)
		}
		if o.sink != nil {
			if _, err := o.sink.Write(o.buf); err != nil {
				o.log.Error("Writing event line to the sink", "error", err)
			}
		}
	}
}
