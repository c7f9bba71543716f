package messaging

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// The environment through which the operator hands every pod of a Strategy
// (its event logger and its engine) the catalog, the mode and the way to
// Redis. PodEnv writes it and ConfigFromEnv reads it: nothing else names
// these variables. The password arrives only as EnvRedisPassword, from a
// Secret.
const (
	EnvMode             = "STRATOPS_MODE"
	EnvCatalogFile      = "STRATOPS_CATALOG_FILE"
	EnvKeyPrefix        = "STRATOPS_KEY_PREFIX"
	EnvRedisTopology    = "STRATOPS_REDIS_TOPOLOGY"
	EnvRedisAddrs       = "STRATOPS_REDIS_ADDRS"
	EnvRedisMasterName  = "STRATOPS_REDIS_MASTER_NAME"
	EnvRedisDB          = "STRATOPS_REDIS_DB"
	EnvRedisUsername    = "STRATOPS_REDIS_USERNAME"
	EnvRedisPassword    = "STRATOPS_REDIS_PASSWORD"
	EnvRedisTLS         = "STRATOPS_REDIS_TLS"
	EnvRedisTLSCAFile   = "STRATOPS_REDIS_TLS_CA_FILE"
	EnvRedisTLSCertFile = "STRATOPS_REDIS_TLS_CERT_FILE"
	EnvRedisTLSKeyFile  = "STRATOPS_REDIS_TLS_KEY_FILE"
	EnvRedisTLSServer   = "STRATOPS_REDIS_TLS_SERVER_NAME"
	EnvRedisTLSInsecure = "STRATOPS_REDIS_TLS_INSECURE_SKIP_VERIFY"
	EnvRedisDialTimeout = "STRATOPS_REDIS_DIAL_TIMEOUT"
	EnvEventLoggerURL   = "STRATOPS_EVENT_LOGGER_URL"
	EnvEventLoggerToken = "STRATOPS_EVENT_LOGGER_TOKEN"
	EnvHealthInterval   = "STRATOPS_HEALTH_INTERVAL"
	EnvLogLevel         = "STRATOPS_LOG_LEVEL"
)

// Where the files of the contract appear in a pod.
const (
	// CatalogFileName is the catalog's key in its ConfigMap.
	CatalogFileName = "catalog.json"
	// CatalogPath is where a pod finds the catalog.
	CatalogPath = "/etc/stratops/" + CatalogFileName
	// RedisCAPath is where a pod finds the Redis CA bundle.
	RedisCAPath = "/etc/stratops/redis-ca/ca.crt"
	// RedisClientCertPath and RedisClientKeyPath are where a pod finds
	// its client certificate and key for Redis (mutual TLS).
	RedisClientCertPath = "/etc/stratops/redis-client-cert/tls.crt"
	RedisClientKeyPath  = "/etc/stratops/redis-client-key/tls.key"
)

// The event logger's HTTP ports: EventLoggerPort serves the state and
// events API (a bearer token, STRATOPS_EVENT_LOGGER_TOKEN, is needed);
// EventLoggerHealthPort serves /healthz, /readyz and /metrics.
const (
	EventLoggerPort       = 8080
	EventLoggerHealthPort = 8081
)

// SecretKeyRef names one key of a Secret in the pod's namespace.
type SecretKeyRef struct {
	Name string
	Key  string
}

// FileRef is a file that a pod sees at Path, holding one key of a
// ConfigMap (ConfigMap set) or of a Secret (Secret set).
type FileRef struct {
	ConfigMap string
	Secret    string
	Key       string
	Path      string
}

// Dir is the directory the file is mounted in.
func (f FileRef) Dir() string { return path.Dir(f.Path) }

// EnvVar is one variable of a pod's environment, neutral of Kubernetes:
// a plain Value, a Secret's key (Secret), or the path of a file that the
// pod must have mounted (File; Value is then its path).
type EnvVar struct {
	Name   string
	Value  string
	Secret *SecretKeyRef
	File   *FileRef
}

// PodEnv is what the operator hands a pod of a Strategy.
type PodEnv struct {
	// Mode is Backtest or Live.
	Mode Mode
	// Catalog is the catalog file; its Path is usually CatalogPath.
	Catalog FileRef
	// KeyPrefix is prepended to every channel and key.
	KeyPrefix string
	// Redis is how to reach Redis; nil gives the pod none (a backtest on
	// the in-memory bus).
	Redis *RedisEnv
	// EventLoggerURL is the Strategy's event logger; an engine in a
	// backtest without Redis forwards its events there. default: none.
	EventLoggerURL string
	// EventLoggerToken is the Secret key holding the bearer token of the
	// logger's API: the logger requires it, a component sends it.
	// default: none.
	EventLoggerToken *SecretKeyRef
	// HealthInterval is the Strategy's health check interval, from which
	// the event logger sizes its health window. default: none.
	HealthInterval time.Duration
	// LogLevel is debug, info, warn or error. default: none (info).
	LogLevel string
}

// RedisEnv is the Redis part of a PodEnv: settings, with the password and
// CA as references to Secrets, never as values.
type RedisEnv struct {
	// Topology is Standalone, Sentinel or Cluster. default: Standalone.
	Topology string
	// Addrs: the server (Standalone), the Sentinels, or Cluster seeds.
	Addrs []string
	// MasterName is the Sentinel master set.
	MasterName string
	// DB is the database. default: 0.
	DB int
	// Username is the ACL user. default: none.
	Username string
	// Password is the Secret key holding the password. default: none.
	Password *SecretKeyRef
	// TLS turns TLS on. default: false.
	TLS bool
	// CA is the Secret key holding a PEM CA bundle. default: system roots.
	CA *SecretKeyRef
	// ClientCert and ClientKey are the Secret keys holding the client
	// certificate and its key (mutual TLS). default: none.
	ClientCert, ClientKey *SecretKeyRef
	// ServerName overrides the name the server's certificate is checked
	// against. default: the address's host.
	ServerName string
	// InsecureSkipVerify skips certificate verification. default: false.
	InsecureSkipVerify bool
	// DialTimeout bounds connecting. default: 2s.
	DialTimeout time.Duration
}

// Env is the pod's environment. Files it names must be mounted at their
// paths; FileRefs lists them.
func (p PodEnv) Env() []EnvVar {
	var out []EnvVar
	add := func(name, value string) {
		if value != "" {
			out = append(out, EnvVar{Name: name, Value: value})
		}
	}
	add(EnvMode, string(p.Mode))
	if p.Catalog.Path != "" {
		f := p.Catalog
		out = append(out, EnvVar{Name: EnvCatalogFile, Value: f.Path, File: &f})
	}
	add(EnvKeyPrefix, p.KeyPrefix)
	if r := p.Redis; r != nil {
		add(EnvRedisTopology, r.Topology)
		add(EnvRedisAddrs, strings.Join(r.Addrs, ","))
		add(EnvRedisMasterName, r.MasterName)
		if r.DB != 0 {
			add(EnvRedisDB, strconv.Itoa(r.DB))
		}
		add(EnvRedisUsername, r.Username)
		if r.DialTimeout > 0 {
			add(EnvRedisDialTimeout, r.DialTimeout.String())
		}
		if r.Password != nil {
			ref := *r.Password
			out = append(out, EnvVar{Name: EnvRedisPassword, Secret: &ref})
		}
		if r.TLS {
			add(EnvRedisTLS, "true")
			add(EnvRedisTLSServer, r.ServerName)
			if r.InsecureSkipVerify {
				add(EnvRedisTLSInsecure, "true")
			}
			if r.CA != nil {
				f := FileRef{Secret: r.CA.Name, Key: r.CA.Key, Path: RedisCAPath}
				out = append(out, EnvVar{Name: EnvRedisTLSCAFile, Value: f.Path, File: &f})
			}
			if r.ClientCert != nil && r.ClientKey != nil {
				cf := FileRef{Secret: r.ClientCert.Name, Key: r.ClientCert.Key, Path: RedisClientCertPath}
				kf := FileRef{Secret: r.ClientKey.Name, Key: r.ClientKey.Key, Path: RedisClientKeyPath}
				out = append(out, EnvVar{Name: EnvRedisTLSCertFile, Value: cf.Path, File: &cf},
					EnvVar{Name: EnvRedisTLSKeyFile, Value: kf.Path, File: &kf})
			}
		}
	}
	add(EnvEventLoggerURL, p.EventLoggerURL)
	if p.EventLoggerToken != nil {
		ref := *p.EventLoggerToken
		out = append(out, EnvVar{Name: EnvEventLoggerToken, Secret: &ref})
	}
	if p.HealthInterval > 0 {
		add(EnvHealthInterval, p.HealthInterval.String())
	}
	add(EnvLogLevel, p.LogLevel)
	return out
}

// Files are the files the environment names, which the pod must mount.
func (p PodEnv) Files() []FileRef {
	var out []FileRef
	for _, e := range p.Env() {
		if e.File != nil {
			out = append(out, *e.File)
		}
	}
	return out
}

// Config resolves the Redis settings to a connection, reading the Secret
// keys they reference with secret: how the operator reaches the same Redis
// as the pods it configures.
func (r RedisEnv) Config(secret func(SecretKeyRef) ([]byte, error)) (RedisConfig, error) {
	c := RedisConfig{
		Topology: r.Topology, Addrs: r.Addrs, MasterName: r.MasterName, DB: r.DB, Username: r.Username,
		TLS: r.TLS, ServerName: r.ServerName, InsecureSkipVerify: r.InsecureSkipVerify, DialTimeout: r.DialTimeout,
	}
	if r.Password != nil {
		v, err := secret(*r.Password)
		if err != nil {
			return RedisConfig{}, err
		}
		c.Password = string(v)
	}
	if r.TLS && r.CA != nil {
		v, err := secret(*r.CA)
		if err != nil {
			return RedisConfig{}, err
		}
		c.CAPEM = v
	}
	if r.TLS && r.ClientCert != nil && r.ClientKey != nil {
		var err error
		if c.ClientCertPEM, err = secret(*r.ClientCert); err != nil {
			return RedisConfig{}, err
		}
		if c.ClientKeyPEM, err = secret(*r.ClientKey); err != nil {
			return RedisConfig{}, err
		}
	}
	return c.withDefaults(), nil
}

// Config is what a pod reads from the environment its Strategy gave it.
type Config struct {
	// Mode is Backtest or Live. default: the catalog's mode.
	Mode Mode
	// CatalogFile is the catalog's path. default: none, the standard's
	// catalog for the mode.
	CatalogFile string
	// KeyPrefix is prepended to every channel and key. default: none.
	KeyPrefix string
	// Redis is how to reach Redis; without addresses there is no Redis.
	Redis RedisConfig
	// EventLoggerURL is the Strategy's event logger. default: none.
	EventLoggerURL string
	// EventLoggerToken is the bearer token of the logger's API. Never
	// logged. default: none.
	EventLoggerToken string
	// HealthInterval is the Strategy's health check interval. default: 0.
	HealthInterval time.Duration
	// LogLevel is debug, info, warn or error. default: "" (info).
	LogLevel string
}

// ConfigFromEnv reads the pod's environment with lookup (os.LookupEnv when
// nil). A variable that is set but malformed is an error that names it.
func ConfigFromEnv(lookup func(string) (string, bool)) (Config, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	get := func(name string) string { v, _ := lookup(name); return strings.TrimSpace(v) }
	var errs []error
	c := Config{
		Mode: Mode(get(EnvMode)), CatalogFile: get(EnvCatalogFile), KeyPrefix: get(EnvKeyPrefix),
		EventLoggerURL: get(EnvEventLoggerURL), LogLevel: get(EnvLogLevel),
		Redis: RedisConfig{
			Topology: get(EnvRedisTopology), MasterName: get(EnvRedisMasterName), Username: get(EnvRedisUsername),
			CAFile: get(EnvRedisTLSCAFile), ServerName: get(EnvRedisTLSServer),
			ClientCertFile: get(EnvRedisTLSCertFile), ClientKeyFile: get(EnvRedisTLSKeyFile),
		},
	}
	// The password is taken as it is: white space may be part of it.
	c.Redis.Password, _ = lookup(EnvRedisPassword)
	c.EventLoggerToken = get(EnvEventLoggerToken)
	if c.Mode != "" && c.Mode != ModeBacktest && c.Mode != ModeLive {
		errs = append(errs, fmt.Errorf("%s=%q: must be Backtest or Live", EnvMode, c.Mode))
	}
	for _, a := range strings.Split(get(EnvRedisAddrs), ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.Redis.Addrs = append(c.Redis.Addrs, a)
		}
	}
	if v := get(EnvRedisDB); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("%s=%q: must be a database number", EnvRedisDB, v))
		}
		c.Redis.DB = n
	}
	boolVar := func(name string, dst *bool) {
		if v := get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: must be true or false", name, v))
			}
			*dst = b
		}
	}
	boolVar(EnvRedisTLS, &c.Redis.TLS)
	boolVar(EnvRedisTLSInsecure, &c.Redis.InsecureSkipVerify)
	durVar := func(name string, dst *time.Duration) {
		if v := get(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s=%q: must be a positive duration such as 2s", name, v))
			}
			*dst = d
		}
	}
	durVar(EnvRedisDialTimeout, &c.Redis.DialTimeout)
	durVar(EnvHealthInterval, &c.HealthInterval)
	if c.EventLoggerURL != "" {
		if u, err := url.Parse(c.EventLoggerURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s=%q: must be an http(s) URL", EnvEventLoggerURL, c.EventLoggerURL))
		}
	}
	c.Redis = c.Redis.withDefaults()
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("messaging: the pod's environment: %w", errors.Join(errs...))
	}
	return c, nil
}

// LoadCatalog reads the catalog the configuration names (the standard's
// for the mode when it names none), with the configuration's mode and key
// prefix applied.
func (c Config) LoadCatalog() (Catalog, error) {
	mode := c.Mode
	if mode == "" {
		mode = ModeBacktest
	}
	cat, err := LoadCatalog(c.CatalogFile, mode)
	if err != nil {
		return Catalog{}, err
	}
	if c.Mode != "" {
		cat.Mode = c.Mode
	}
	if c.KeyPrefix != "" {
		cat.KeyPrefix = c.KeyPrefix
	}
	return cat, cat.Validate()
}
