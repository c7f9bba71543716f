package eventlogger

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/pkg/messaging"
)

// HealthHandler serves what probes and Prometheus read, on the logger's
// health port:
//
//	GET  /healthz          the process is alive
//	GET  /readyz           it can do its job (Live: Redis reachable)
//	GET  /metrics          Prometheus metrics
func (s *Service) HealthHandler() http.Handler {
	mux := http.NewServeMux()
	s.healthRoutes(mux)
	return mux
}

// APIHandler serves the state and events API, on the logger's API port.
// Every request needs the bearer token (ServiceConfig.APIToken): 401
// without it. At most MaxConcurrentRequests are served at once: 429 with
// Retry-After beyond. A request body is at most MaxMessageBytes: 413.
//
//	GET  /state/{key}      a key's latest value and remaining TTL;
//	                       events:history is read in pages (?count=, at
//	                       most 1000, and ?before= the page's "next")
//	PUT  /state/{key}      store a key's value with the catalog's TTL
//	POST /events           ingest one event (object) or a batch (array);
//	                       ?channel= names the catalog channel it belongs to
func (s *Service) APIHandler() http.Handler {
	mux := http.NewServeMux()
	s.apiRoutes(mux)
	return mux
}

// Handler serves both on one port: for a logger run by hand, and tests.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	s.healthRoutes(mux)
	s.apiRoutes(mux)
	return mux
}

func (s *Service) healthRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, msg := s.Ready()
		if !ok {
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, msg+"\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
}

func (s *Service) apiRoutes(mux *http.ServeMux) {
	mux.Handle("GET /state/{key}", s.guard(s.getState))
	mux.Handle("PUT /state/{key}", s.guard(s.putState))
	mux.Handle("POST /events", s.guard(s.postEvents))
}

// guard puts an API route behind the token and the concurrency bound,
// and bounds its body.
func (s *Service) guard(h http.HandlerFunc) http.Handler {
	want := []byte("Bearer " + s.cfg.APIToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.APIToken != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			s.metrics.apiRefused.WithLabelValues("unauthorized").Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="stratops-eventlogger"`)
			writeError(w, http.StatusUnauthorized, "the event logger's API needs the Strategy's token: Authorization: Bearer $"+messaging.EnvEventLoggerToken)
			return
		}
		select {
		case s.inFlight <- struct{}{}:
			defer func() { <-s.inFlight }()
		default:
			s.metrics.apiRefused.WithLabelValues("too_many_requests").Inc()
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, fmt.Sprintf("the event logger serves at most %d API requests at once; retry later", cap(s.inFlight)))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxMessageBytes))
		h(w, r)
	})
}

// Timeouts of the logger's HTTP servers: a client that sends its request
// slowly, or reads the answer slowly, or idles, is cut off.
type Timeouts struct {
	// ReadHeader bounds reading a request's headers. default: 5s.
	ReadHeader time.Duration
	// Read bounds reading a whole request. default: 10s.
	Read time.Duration
	// Write bounds writing the answer. default: 15s.
	Write time.Duration
	// Idle bounds a kept-alive connection between requests. default: 60s.
	Idle time.Duration
}

// NewServer is an HTTP server for h with the timeouts (zero fields: their
// defaults).
func NewServer(h http.Handler, t Timeouts) *http.Server {
	def := func(d, v time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return v
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: def(t.ReadHeader, 5*time.Second),
		ReadTimeout:       def(t.Read, 10*time.Second),
		WriteTimeout:      def(t.Write, 15*time.Second),
		IdleTimeout:       def(t.Idle, 60*time.Second),
		MaxHeaderBytes:    16 << 10,
	}
}

type stateResponse struct {
	Key string `json:"key"`
	// TTLSeconds is the remaining TTL; -1 for a persistent key.
	TTLSeconds int64           `json:"ttlSeconds"`
	Value      json.RawMessage `json:"value"`
	// Next, on a page of events:history, is the ?before= of the page of
	// older entries; empty on the oldest page.
	Next string `json:"next,omitempty"`
}

// History pages: ?count= entries each, at most maxHistoryPage.
const (
	defaultHistoryPage = 100
	maxHistoryPage     = 1000
)

func (s *Service) getState(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("key")
	if _, ok := s.cfg.Catalog.Key(name); !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown key %q: not in the strategy's catalog", name))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	var resp stateResponse
	resp.Key = name
	if name == messaging.KeyEventsHistory {
		n := defaultHistoryPage
		if q := r.URL.Query().Get("count"); q != "" {
			c, err := strconv.Atoi(q)
			if err != nil || c < 1 || c > maxHistoryPage {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("count %q: a page holds 1 to %d entries; page on with ?before=", q, maxHistoryPage))
				return
			}
			n = c
		}
		entries, next, err := s.store.History(ctx, n, r.URL.Query().Get("before"))
		if errors.Is(err, eventlog.ErrBadCursor) {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		if len(entries) == 0 {
			writeError(w, http.StatusNotFound, "events:history is empty")
			return
		}
		_, ttl, _ := s.bus.Get(ctx, name)
		resp.TTLSeconds = ttlSeconds(ttl)
		resp.Value, _ = json.Marshal(entries)
		resp.Next = next
		writeJSON(w, http.StatusOK, resp)
		return
	}
	v, ttl, err := s.bus.Get(ctx, name)
	if errors.Is(err, messaging.ErrKeyNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("key %q has no value (never set, or expired)", name))
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	resp.TTLSeconds = ttlSeconds(ttl)
	if json.Valid(v) {
		resp.Value = v
	} else {
		resp.Value, _ = json.Marshal(string(v))
	}
	writeJSON(w, http.StatusOK, resp)
}

func ttlSeconds(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return int64((d + time.Second - 1) / time.Second)
}

func (s *Service) putState(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("key")
	k, ok := s.cfg.Catalog.Key(name)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown key %q: not in the strategy's catalog", name))
		return
	}
	if name == messaging.KeyEventsHistory {
		writeError(w, http.StatusMethodNotAllowed, "events:history is written by the event logger only")
		return
	}
	body, err := readBody(r, s.cfg.MaxMessageBytes)
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	}
	if _, nonconforming, err := messaging.DecodeKeyValue(body, s.cfg.MaxMessageBytes); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	} else if nonconforming != "" {
		writeError(w, http.StatusBadRequest, "eventlogger: "+nonconforming+`: a key value needs a "timestamp" (RFC 3339, or ISO 8601 read as UTC)`)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := s.bus.Set(ctx, name, body, k.TTL.Duration); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type ingestResponse struct {
	Accepted int      `json:"accepted"`
	IDs      []string `json:"ids"`
}

// postEvents validates the whole request before it takes any of it: a
// batch with one bad event is refused whole, with the event's index and
// what is wrong, so the client can fix and resend it without duplicates.
func (s *Service) postEvents(w http.ResponseWriter, r *http.Request) {
	channel := r.URL.Query().Get("channel")
	if channel == "" {
		channel = ChannelHTTP
	} else if _, ok := s.cfg.Catalog.Channel(channel); !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown channel %q: not in the strategy's catalog", channel))
		return
	}
	// A request, batch or single event, is at most the message limit.
	body, err := readBody(r, s.cfg.MaxMessageBytes)
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	}
	var raws []json.RawMessage
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '[' {
		if err := json.Unmarshal(t, &raws); err != nil {
			s.countInvalid(channel, &messaging.InvalidError{Reason: messaging.ReasonInvalidJSON, Detail: err.Error()}, body)
			writeError(w, http.StatusBadRequest, "eventlogger: invalid_json: the batch is not a JSON array of events")
			return
		}
	} else {
		raws = []json.RawMessage{body}
	}
	if len(raws) == 0 {
		writeError(w, http.StatusBadRequest, "no events in the request")
		return
	}
	now := time.Now().UTC()
	events := make([]messaging.Event, len(raws))
	for i, raw := range raws {
		e, err := s.cfg.Catalog.DecodeEvent(channel, raw, messaging.DecodeOptions{MaxBytes: s.cfg.MaxMessageBytes, Received: now})
		if err != nil {
			s.countInvalid(channel, err, raw)
			msg := err.Error()
			if len(raws) > 1 {
				msg = fmt.Sprintf("event %d: %s", i, msg)
			}
			writeError(w, http.StatusBadRequest, msg)
			return
		}
		events[i] = e
	}
	ids, err := s.Accept(channel, events, now)
	switch {
	case errors.Is(err, ErrQueueFull), errors.Is(err, ErrSpoolFull):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, err.Error()+": the history is behind (is Redis reachable?) and there is no room to keep more; nothing of this request was taken; retry later")
		return
	case errors.Is(err, ErrStopping):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, err.Error()+"; retry, another replica or the next start takes it")
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, "the events were taken but could not be made durable on disk: "+err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, ingestResponse{Accepted: len(ids), IDs: ids})
}

func readBody(r *http.Request, limit int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, fmt.Errorf("eventlogger: too_large: the request is over %d bytes", limit)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the request: %w", err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("eventlogger: too_large: the request is over %d bytes", limit)
	}
	return b, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
