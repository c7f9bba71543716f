package messaging

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisConfig says how to reach Redis: what a pod reads from the
// STRATOPS_REDIS_* environment, and what the operator resolves for its own
// probes. Every field's zero value means its default.
type RedisConfig struct {
	// Topology is Standalone, Sentinel or Cluster. default: Standalone.
	Topology string
	// Addrs: the server (Standalone), the Sentinels, or Cluster seeds.
	// default: none, which means no Redis.
	Addrs []string
	// MasterName is the Sentinel master set. default: none.
	MasterName string
	// DB is the database number. default: 0.
	DB int
	// Username is the ACL user. default: none (the default user).
	Username string
	// Password of the user. Never logged. default: none.
	Password string
	// TLS turns TLS on. default: false.
	TLS bool
	// CAFile (or CAPEM) is a PEM CA bundle. default: the system roots.
	CAFile string
	CAPEM  []byte
	// ClientCertFile and ClientKeyFile (or ClientCertPEM and ClientKeyPEM)
	// are the certificate and key presented to the server (mutual TLS).
	// default: none.
	ClientCertFile, ClientKeyFile string
	ClientCertPEM, ClientKeyPEM   []byte
	// ServerName is checked against the server's certificate. default:
	// the address's host.
	ServerName string
	// InsecureSkipVerify skips certificate verification. default: false.
	InsecureSkipVerify bool
	// DialTimeout bounds connecting. default: 2s.
	DialTimeout time.Duration
	// ReadTimeout and WriteTimeout bound each command. default: 3s.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// Dialer, when set, opens every connection: to the server, the
	// Sentinels and the masters they name, the Cluster nodes. TLS, when
	// on, runs over the connection it returns, checked against ServerName
	// or the host dialled. default: a plain net.Dialer.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Defaults of RedisConfig.
const (
	DefaultDialTimeout  = 2 * time.Second
	DefaultReadTimeout  = 3 * time.Second
	DefaultWriteTimeout = 3 * time.Second
)

// withDefaults fills in what is unset; the one place defaults are set.
func (c RedisConfig) withDefaults() RedisConfig {
	if c.Topology == "" {
		c.Topology = "Standalone"
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	return c
}

// Configured reports whether any Redis address was given.
func (c RedisConfig) Configured() bool { return len(c.Addrs) > 0 }

// String describes the endpoint without credentials.
func (c RedisConfig) String() string {
	return fmt.Sprintf("%s %v db=%d tls=%t", c.withDefaults().Topology, c.Addrs, c.DB, c.TLS)
}

// UniversalOptions turns the config into go-redis options.
func (c RedisConfig) UniversalOptions() (*redis.UniversalOptions, error) {
	if !c.Configured() {
		return nil, errors.New("messaging: no Redis address")
	}
	c = c.withDefaults()
	o := &redis.UniversalOptions{
		Addrs: c.Addrs, DB: c.DB, Username: c.Username, Password: c.Password,
		DialTimeout: c.DialTimeout, ReadTimeout: c.ReadTimeout, WriteTimeout: c.WriteTimeout,
		// A command is sent once: go-redis would send one again when its
		// reply is late (a slow fsync, a busy network), and a PUBLISH or
		// XADD sent twice is delivered or logged twice. The caller sees the
		// error and decides. Dialling, which sends nothing, is retried.
		MaxRetries: -1, DialerRetries: 2, DialerRetryTimeout: 100 * time.Millisecond,
	}
	switch c.Topology {
	case "Standalone":
		if len(c.Addrs) != 1 {
			return nil, fmt.Errorf("messaging: Standalone needs exactly one address, got %d", len(c.Addrs))
		}
	case "Sentinel":
		if c.MasterName == "" {
			return nil, errors.New("messaging: Sentinel needs a master name")
		}
		o.MasterName = c.MasterName
	case "Cluster":
		o.IsClusterMode = true
		o.DB = 0
	default:
		return nil, fmt.Errorf("messaging: unknown topology %q", c.Topology)
	}
	if c.TLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // only when the Strategy asks for it
		if c.CAFile != "" || len(c.CAPEM) > 0 {
			pem := c.CAPEM
			if len(pem) == 0 {
				var err error
				if pem, err = os.ReadFile(c.CAFile); err != nil {
					return nil, fmt.Errorf("messaging: reading Redis CA: %w", err)
				}
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, errors.New("messaging: the Redis CA holds no PEM certificate")
			}
			cfg.RootCAs = pool
		}
		if cert, key := c.ClientCertPEM, c.ClientKeyPEM; len(cert) > 0 || c.ClientCertFile != "" {
			if len(cert) == 0 {
				var err error
				if cert, err = os.ReadFile(c.ClientCertFile); err != nil {
					return nil, fmt.Errorf("messaging: reading the Redis client certificate: %w", err)
				}
				if key, err = os.ReadFile(c.ClientKeyFile); err != nil {
					return nil, fmt.Errorf("messaging: reading the Redis client key: %w", err)
				}
			}
			pair, err := tls.X509KeyPair(cert, key)
			if err != nil {
				return nil, fmt.Errorf("messaging: the Redis client certificate and key: %w", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		o.TLSConfig = cfg
	}
	if c.Dialer != nil {
		o.Dialer = withTLS(c.Dialer, o.TLSConfig, c.DialTimeout)
	}
	return o, nil
}

// withTLS runs TLS (when cfg is set) over what dial returns, the handshake
// bounded by timeout.
func withTLS(dial func(ctx context.Context, network, addr string) (net.Conn, error), cfg *tls.Config, timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if cfg == nil {
		return dial
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c := cfg.Clone()
		if c.ServerName == "" {
			if host, _, err := net.SplitHostPort(addr); err == nil {
				c.ServerName = host
			}
		}
		hctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		tc := tls.Client(conn, c)
		if err := tc.HandshakeContext(hctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		return tc, nil
	}
}

// NewRedisClient makes a go-redis client for the config.
func NewRedisClient(c RedisConfig) (redis.UniversalClient, error) {
	o, err := c.UniversalOptions()
	if err != nil {
		return nil, err
	}
	return redis.NewUniversalClient(o), nil
}
