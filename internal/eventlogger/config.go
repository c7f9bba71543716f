package eventlogger

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// Environment variables through which the operator hands a pod (the event
// logger, and an engine) its catalog and its Redis connection. The password
// arrives only through EnvRedisPassword, from a secretKeyRef.
const (
	EnvMode              = "STRATOPS_MODE"
	EnvCatalogFile       = "STRATOPS_CATALOG_FILE"
	EnvKeyPrefix         = "STRATOPS_KEY_PREFIX"
	EnvRedisTopology     = "STRATOPS_REDIS_TOPOLOGY"
	EnvRedisAddrs        = "STRATOPS_REDIS_ADDRS"
	EnvRedisMasterName   = "STRATOPS_REDIS_MASTER_NAME"
	EnvRedisDB           = "STRATOPS_REDIS_DB"
	EnvRedisUsername     = "STRATOPS_REDIS_USERNAME"
	EnvRedisPassword     = "STRATOPS_REDIS_PASSWORD"
	EnvRedisTLS          = "STRATOPS_REDIS_TLS"
	EnvRedisTLSCAFile    = "STRATOPS_REDIS_TLS_CA_FILE"
	EnvRedisTLSServer    = "STRATOPS_REDIS_TLS_SERVER_NAME"
	EnvRedisTLSInsecure  = "STRATOPS_REDIS_TLS_INSECURE_SKIP_VERIFY"
	EnvRedisDialTimeout  = "STRATOPS_REDIS_DIAL_TIMEOUT"
	EnvLogLevel          = "STRATOPS_LOG_LEVEL"
	EnvHTTPAddr          = "STRATOPS_HTTP_ADDR"
	EnvMaxMessageBytes   = "STRATOPS_MAX_MESSAGE_BYTES"
	EnvEventLogFile      = "STRATOPS_EVENT_LOG_FILE"
	EnvPendingQueueLimit = "STRATOPS_PENDING_QUEUE_LIMIT"
)

// CatalogFileName is the catalog's file name in the ConfigMap and its mount.
const CatalogFileName = "catalog.json"

// DefaultHTTPPort is the event logger's HTTP port: health, metrics, state
// and ingest.
const DefaultHTTPPort = 8080

// RedisConfigFromEnv reads the Redis connection the operator handed the pod
// through the STRATOPS_REDIS_* environment.
func RedisConfigFromEnv() RedisConfig {
	c := RedisConfig{
		Topology:           os.Getenv(EnvRedisTopology),
		MasterName:         os.Getenv(EnvRedisMasterName),
		Username:           os.Getenv(EnvRedisUsername),
		Password:           os.Getenv(EnvRedisPassword),
		TLS:                os.Getenv(EnvRedisTLS) == "true",
		CAFile:             os.Getenv(EnvRedisTLSCAFile),
		ServerName:         os.Getenv(EnvRedisTLSServer),
		InsecureSkipVerify: os.Getenv(EnvRedisTLSInsecure) == "true",
		DialTimeout:        2 * time.Second,
	}
	if c.Topology == "" {
		c.Topology = "Standalone"
	}
	for _, a := range strings.Split(os.Getenv(EnvRedisAddrs), ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.Addrs = append(c.Addrs, a)
		}
	}
	if v, err := strconv.Atoi(os.Getenv(EnvRedisDB)); err == nil {
		c.DB = v
	}
	if v, err := time.ParseDuration(os.Getenv(EnvRedisDialTimeout)); err == nil {
		c.DialTimeout = v
	}
	return c
}
