package messaging

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// forwarder sends the events a backtest publishes on its in-process bus
// to the Strategy's event logger (POST /events), in order, in batches of
// one channel, retrying while the logger is unreachable or busy.
type forwarder struct {
	url    string
	token  string
	client *http.Client
	log    *slog.Logger
	queue  chan forwarded
	done   chan struct{}
	stop   chan struct{}

	mu     sync.RWMutex // held for reading while enqueueing, for writing to close the queue
	closed bool
}

type forwarded struct {
	channel string
	msg     []byte
}

// A forwarded batch holds at most forwardBatch events and, as one
// request, at most forwardBatchBytes: the logger's request limit.
const (
	forwardBatch      = 256
	forwardBatchBytes = DefaultMaxMessageBytes
)

func newForwarder(base, token string, o Options) *forwarder {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.ForwardQueue <= 0 {
		o.ForwardQueue = 10_000
	}
	f := &forwarder{
		url: strings.TrimRight(base, "/") + "/events", token: token, client: o.HTTPClient, log: o.Log,
		queue: make(chan forwarded, o.ForwardQueue), done: make(chan struct{}), stop: make(chan struct{}),
	}
	go f.run()
	return f
}

func (f *forwarder) enqueue(ctx context.Context, channel string, msg []byte) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return errors.New("messaging: client closed")
	}
	select {
	case f.queue <- forwarded{channel, msg}:
		return nil
	case <-f.done:
		return errors.New("messaging: client closed")
	case <-ctx.Done():
		return fmt.Errorf("messaging: forwarding to the event logger: %w", ctx.Err())
	}
}

func (f *forwarder) run() {
	defer close(f.done)
	var next *forwarded
	for {
		first := next
		next = nil
		if first == nil {
			select {
			case e, ok := <-f.queue:
				if !ok {
					return
				}
				first = &e
			case <-f.stop:
				return
			}
		}
		batch, size := [][]byte{first.msg}, len(first.msg)+2
	fill:
		for len(batch) < forwardBatch {
			select {
			case e, ok := <-f.queue:
				if !ok {
					break fill
				}
				if e.channel != first.channel || size+len(e.msg)+1 > forwardBatchBytes {
					next = &e
					break fill
				}
				batch, size = append(batch, e.msg), size+len(e.msg)+1
			default:
				break fill
			}
		}
		if !f.send(first.channel, batch) {
			return
		}
	}
}

// send posts one batch until the logger takes it or refuses it for good;
// false when the forwarder was stopped first.
func (f *forwarder) send(channel string, batch [][]byte) bool {
	body := append([]byte{'['}, bytes.Join(batch, []byte{','})...)
	body = append(body, ']')
	u := f.url + "?channel=" + url.QueryEscape(channel)
	retry := retryPolicy(100*time.Millisecond, 5*time.Second)
	for {
		req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			f.log.Error("Cannot forward events to the event logger", "error", err.Error())
			return true
		}
		req.Header.Set("Content-Type", "application/json")
		if f.token != "" {
			req.Header.Set("Authorization", "Bearer "+f.token)
		}
		resp, err := f.client.Do(req)
		if err == nil {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			_ = resp.Body.Close()
			switch {
			case resp.StatusCode < 300:
				return true
			case resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests:
				// Refused for what it is: sending it again cannot help.
				f.log.Error("The event logger refused forwarded events", "channel", channel, "events", len(batch),
					"status", resp.StatusCode, "error", strings.TrimSpace(string(msg)))
				return true
			}
			err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
		}
		f.log.Warn("Forwarding events to the event logger failed; retrying", "channel", channel, "events", len(batch), "error", err.Error())
		select {
		case <-time.After(retry.NextBackOff()):
		case <-f.stop:
			return false
		}
	}
}

// close forwards what is queued until ctx ends.
func (f *forwarder) close(ctx context.Context) error {
	f.mu.Lock()
	f.closed = true
	close(f.queue)
	f.mu.Unlock()
	select {
	case <-f.done:
		return nil
	case <-ctx.Done():
		close(f.stop)
		<-f.done
		return fmt.Errorf("messaging: %d events not forwarded to the event logger: %w", len(f.queue), ctx.Err())
	}
}
