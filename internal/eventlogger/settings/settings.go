// Package settings is the event logger's own settings as environment
// variables, in one codec: the operator writes them into the logger's pod
// (Env) and the logger binary reads them (FromEnv), so that both agree on
// every name and default. What the operator hands every component (the
// catalog, the mode, Redis) is the pod contract of package messaging.
package settings

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stratops/stratops/pkg/messaging"
)

// The variables. The operator sets the spool's, the drain's and the pod's
// name; the others are for running the logger by hand.
const (
	EnvSpoolDir          = "STRATOPS_SPOOL_DIR"
	EnvSpoolMaxBytes     = "STRATOPS_SPOOL_MAX_BYTES"
	EnvDrainTimeout      = "STRATOPS_DRAIN_TIMEOUT"
	EnvPodName           = "STRATOPS_POD_NAME"
	EnvHTTPAddr          = "STRATOPS_HTTP_ADDR"
	EnvHealthAddr        = "STRATOPS_HEALTH_ADDR"
	EnvMaxMessageBytes   = "STRATOPS_MAX_MESSAGE_BYTES"
	EnvEventLogFile      = "STRATOPS_EVENT_LOG_FILE"
	EnvPendingQueueLimit = "STRATOPS_PENDING_QUEUE_LIMIT"
)

// Defaults, each written here only.
const (
	// DefaultPendingLimit bounds the events kept in memory while they wait
	// for the history.
	DefaultPendingLimit = 100_000
	// DefaultSpoolMaxBytes is the spool's room when none is given.
	DefaultSpoolMaxBytes int64 = 256 << 20
	// DefaultDrainTimeout bounds the writing of what waits at shutdown.
	DefaultDrainTimeout = 10 * time.Second
)

// PodNameField is the pod field the operator gives EnvPodName from.
const PodNameField = "metadata.name"

// Settings are the logger's own settings.
type Settings struct {
	// HTTPAddr is the listen address of the state and events API.
	// default: ":8080" (messaging.EventLoggerPort).
	HTTPAddr string
	// HealthAddr is the listen address of /healthz, /readyz and /metrics;
	// empty: served on HTTPAddr. default: ":8081".
	HealthAddr string
	// EventLogFile, when set, also receives the event lines.
	EventLogFile string
	// MaxMessageBytes bounds a message. default:
	// messaging.DefaultMaxMessageBytes.
	MaxMessageBytes int
	// PendingLimit bounds the events kept in memory. default:
	// DefaultPendingLimit.
	PendingLimit int
	// SpoolDir keeps accepted events until the history has them; empty: no
	// spool.
	SpoolDir string
	// SpoolMaxBytes is the spool's room. default: DefaultSpoolMaxBytes.
	SpoolMaxBytes int64
	// DrainTimeout bounds the drain at shutdown. default:
	// DefaultDrainTimeout.
	DrainTimeout time.Duration
	// PodName names this replica in the lease; the operator gives it from
	// the pod's own name (PodNameField). default: the host name.
	PodName string
	// PodNameFromPod: Env gives EnvPodName from PodNameField instead of
	// a value.
	PodNameFromPod bool
}

// Defaults are the settings of a logger given no variable.
func Defaults() Settings {
	return Settings{
		HTTPAddr:        ":" + strconv.Itoa(messaging.EventLoggerPort),
		HealthAddr:      ":" + strconv.Itoa(messaging.EventLoggerHealthPort),
		MaxMessageBytes: messaging.DefaultMaxMessageBytes,
		PendingLimit:    DefaultPendingLimit,
		SpoolMaxBytes:   DefaultSpoolMaxBytes,
		DrainTimeout:    DefaultDrainTimeout,
	}
}

// EnvVar is one variable: a Value, or the pod field (FieldPath) it is
// given from.
type EnvVar struct {
	Name, Value, FieldPath string
}

// Env is the settings as variables: those that differ from Defaults, in a
// fixed order, so that the same settings always make the same pod.
func (s Settings) Env() []EnvVar {
	d := Defaults()
	var out []EnvVar
	add := func(name string, v, def any) {
		if v != def {
			out = append(out, EnvVar{Name: name, Value: fmt.Sprint(v)})
		}
	}
	add(EnvHTTPAddr, s.HTTPAddr, d.HTTPAddr)
	add(EnvHealthAddr, s.HealthAddr, d.HealthAddr)
	add(EnvEventLogFile, s.EventLogFile, d.EventLogFile)
	add(EnvMaxMessageBytes, s.MaxMessageBytes, d.MaxMessageBytes)
	add(EnvPendingQueueLimit, s.PendingLimit, d.PendingLimit)
	add(EnvSpoolDir, s.SpoolDir, d.SpoolDir)
	add(EnvSpoolMaxBytes, s.SpoolMaxBytes, d.SpoolMaxBytes)
	add(EnvDrainTimeout, s.DrainTimeout, d.DrainTimeout)
	switch {
	case s.PodNameFromPod:
		out = append(out, EnvVar{Name: EnvPodName, FieldPath: PodNameField})
	case s.PodName != "":
		out = append(out, EnvVar{Name: EnvPodName, Value: s.PodName})
	}
	return out
}

// FromEnv reads the settings from the environment (lookup; nil:
// os.LookupEnv), with Defaults for what is unset. A value that does not
// parse is an error naming the variable, never a silent default.
func FromEnv(lookup func(string) (string, bool)) (Settings, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	s := Defaults()
	var errs []error
	str := func(name string, into *string) {
		if v, ok := lookup(name); ok {
			*into = strings.TrimSpace(v)
		}
	}
	num := func(name string, into *int64, minimum int64) {
		v, ok := lookup(name)
		if !ok || strings.TrimSpace(v) == "" {
			return
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s=%q: not a whole number (bytes and counts are plain integers)", name, v))
		case n < minimum:
			errs = append(errs, fmt.Errorf("%s=%q: must be at least %d", name, v, minimum))
		default:
			*into = n
		}
	}
	str(EnvHTTPAddr, &s.HTTPAddr)
	str(EnvHealthAddr, &s.HealthAddr)
	str(EnvEventLogFile, &s.EventLogFile)
	str(EnvSpoolDir, &s.SpoolDir)
	str(EnvPodName, &s.PodName)
	maxMsg, pending := int64(s.MaxMessageBytes), int64(s.PendingLimit)
	num(EnvMaxMessageBytes, &maxMsg, 1)
	num(EnvPendingQueueLimit, &pending, 1)
	num(EnvSpoolMaxBytes, &s.SpoolMaxBytes, 1)
	s.MaxMessageBytes, s.PendingLimit = int(maxMsg), int(pending)
	if v, ok := lookup(EnvDrainTimeout); ok && strings.TrimSpace(v) != "" {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s=%q: not a duration (10s, 1m)", EnvDrainTimeout, v))
		case d < 0:
			errs = append(errs, fmt.Errorf("%s=%q: must not be negative", EnvDrainTimeout, v))
		default:
			s.DrainTimeout = d
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Settings{}, fmt.Errorf("eventlogger settings: %w", err)
	}
	return s, nil
}
