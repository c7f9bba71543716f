package eventlogger

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisConfig says how to reach Redis: what the operator hands a pod
// through the STRATOPS_REDIS_* environment variables.
type RedisConfig struct {
	// Topology is Standalone, Sentinel or Cluster. default: Standalone.
	Topology string
	// Addrs: the server (Standalone), the Sentinels, or Cluster seeds.
	Addrs []string
	// MasterName is the Sentinel master set name.
	MasterName string
	// DB is the database number. default: 0.
	DB int
	// Username is the ACL user; Password its password. Never logged.
	Username string
	Password string
	// TLS turns TLS on; CAFile (or CAPEM) is a PEM bundle (default:
	// system roots).
	TLS                bool
	CAFile             string
	CAPEM              []byte
	ServerName         string
	InsecureSkipVerify bool
	// DialTimeout bounds connecting. default: 2s.
	DialTimeout time.Duration
	// ReadTimeout and WriteTimeout bound each command. default: 3s.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
}

// Configured reports whether any Redis address was given.
func (c RedisConfig) Configured() bool { return len(c.Addrs) > 0 }

// String describes the endpoint without credentials.
func (c RedisConfig) String() string {
	return fmt.Sprintf("%s %v db=%d tls=%t", topologyOr(c.Topology), c.Addrs, c.DB, c.TLS)
}

func topologyOr(t string) string {
	if t == "" {
		return "Standalone"
	}
	return t
}

// UniversalOptions turns the config into go-redis options.
func (c RedisConfig) UniversalOptions() (*redis.UniversalOptions, error) {
	if !c.Configured() {
		return nil, errors.New("eventlogger: no Redis address")
	}
	o := &redis.UniversalOptions{
		Addrs: c.Addrs, DB: c.DB, Username: c.Username, Password: c.Password,
		DialTimeout: c.DialTimeout, ReadTimeout: c.ReadTimeout, WriteTimeout: c.WriteTimeout,
		// Fail fast rather than retrying a dead server for long.
		MaxRetries: 1, DialerRetries: 2, DialerRetryTimeout: 100 * time.Millisecond,
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 3 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 3 * time.Second
	}
	switch topologyOr(c.Topology) {
	case "Standalone":
		if len(c.Addrs) != 1 {
			return nil, fmt.Errorf("eventlogger: Standalone needs exactly one address, got %d", len(c.Addrs))
		}
	case "Sentinel":
		if c.MasterName == "" {
			return nil, errors.New("eventlogger: Sentinel needs a master name")
		}
		o.MasterName = c.MasterName
	case "Cluster":
		o.IsClusterMode = true
		o.DB = 0
	default:
		return nil, fmt.Errorf("eventlogger: unknown topology %q", c.Topology)
	}
	if c.TLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // only when the Strategy asks for it
		if c.CAFile != "" || len(c.CAPEM) > 0 {
			pem := c.CAPEM
			if len(pem) == 0 {
				var err error
				if pem, err = os.ReadFile(c.CAFile); err != nil {
					return nil, fmt.Errorf("eventlogger: reading Redis CA: %w", err)
				}
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, errors.New("eventlogger: the Redis CA holds no PEM certificate")
			}
			cfg.RootCAs = pool
		}
		o.TLSConfig = cfg
	}
	return o, nil
}

// NewRedisClient makes a go-redis client for the config.
func NewRedisClient(c RedisConfig) (redis.UniversalClient, error) {
	o, err := c.UniversalOptions()
	if err != nil {
		return nil, err
	}
	return redis.NewUniversalClient(o), nil
}
