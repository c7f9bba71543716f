"""The environment through which the operator hands every pod of a
Strategy the catalog, the mode and the way to Redis: read exactly as the Go
package's ConfigFromEnv reads it (a cross-language test holds them to the
same results)."""

import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional
from urllib.parse import urlparse

ENV_MODE = "STRATOPS_MODE"
ENV_CATALOG_FILE = "STRATOPS_CATALOG_FILE"
ENV_KEY_PREFIX = "STRATOPS_KEY_PREFIX"
ENV_REDIS_TOPOLOGY = "STRATOPS_REDIS_TOPOLOGY"
ENV_REDIS_ADDRS = "STRATOPS_REDIS_ADDRS"
ENV_REDIS_MASTER_NAME = "STRATOPS_REDIS_MASTER_NAME"
ENV_REDIS_DB = "STRATOPS_REDIS_DB"
ENV_REDIS_USERNAME = "STRATOPS_REDIS_USERNAME"
ENV_REDIS_PASSWORD = "STRATOPS_REDIS_PASSWORD"
ENV_REDIS_TLS = "STRATOPS_REDIS_TLS"
ENV_REDIS_TLS_CA_FILE = "STRATOPS_REDIS_TLS_CA_FILE"
ENV_REDIS_TLS_CERT_FILE = "STRATOPS_REDIS_TLS_CERT_FILE"
ENV_REDIS_TLS_KEY_FILE = "STRATOPS_REDIS_TLS_KEY_FILE"
ENV_REDIS_TLS_SERVER_NAME = "STRATOPS_REDIS_TLS_SERVER_NAME"
ENV_REDIS_TLS_INSECURE = "STRATOPS_REDIS_TLS_INSECURE_SKIP_VERIFY"
ENV_REDIS_DIAL_TIMEOUT = "STRATOPS_REDIS_DIAL_TIMEOUT"
ENV_EVENT_LOGGER_URL = "STRATOPS_EVENT_LOGGER_URL"
ENV_EVENT_LOGGER_TOKEN = "STRATOPS_EVENT_LOGGER_TOKEN"
ENV_HEALTH_INTERVAL = "STRATOPS_HEALTH_INTERVAL"
ENV_LOG_LEVEL = "STRATOPS_LOG_LEVEL"

MODE_BACKTEST = "Backtest"
MODE_LIVE = "Live"

DEFAULT_DIAL_TIMEOUT = 2.0


class ConfigError(ValueError):
    """A variable of the pod's environment is set but malformed. The
    message names every such variable."""


@dataclass
class RedisConfig:
    """How to reach Redis. Without addresses there is no Redis."""

    topology: str = "Standalone"
    addrs: List[str] = field(default_factory=list)
    master_name: str = ""
    db: int = 0
    username: str = ""
    password: str = field(default="", repr=False)
    tls: bool = False
    ca_file: str = ""
    client_cert_file: str = ""
    client_key_file: str = ""
    server_name: str = ""
    insecure_skip_verify: bool = False
    dial_timeout: float = DEFAULT_DIAL_TIMEOUT  # seconds

    def configured(self) -> bool:
        return bool(self.addrs)

    def __str__(self) -> str:
        s = "%s %s" % (self.topology, ",".join(self.addrs))
        if self.master_name:
            s += " master " + self.master_name
        return s


@dataclass
class Config:
    """What a pod reads from the environment its Strategy gave it."""

    mode: str = ""
    catalog_file: str = ""
    key_prefix: str = ""
    redis: RedisConfig = field(default_factory=RedisConfig)
    event_logger_url: str = ""
    event_logger_token: str = field(default="", repr=False)
    health_interval: float = 0.0  # seconds
    log_level: str = ""

    def to_dict(self) -> Dict[str, object]:
        """The configuration as plain values, durations in nanoseconds:
        what the cross-language test compares with the Go reader's."""
        r = self.redis
        return {
            "mode": self.mode, "catalogFile": self.catalog_file, "keyPrefix": self.key_prefix,
            "eventLoggerURL": self.event_logger_url, "eventLoggerToken": self.event_logger_token,
            "healthIntervalNs": round(self.health_interval * 1e9), "logLevel": self.log_level,
            "redis": {
                "topology": r.topology, "addrs": list(r.addrs), "masterName": r.master_name, "db": r.db,
                "username": r.username, "password": r.password, "tls": r.tls, "caFile": r.ca_file,
                "clientCertFile": r.client_cert_file, "clientKeyFile": r.client_key_file,
                "serverName": r.server_name, "insecureSkipVerify": r.insecure_skip_verify,
                "dialTimeoutNs": round(r.dial_timeout * 1e9),
            },
        }


# Go's strconv.ParseBool.
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_duration(s: str) -> float:
    """Go's time.ParseDuration ("2s", "1m30s", "500ms"), in seconds."""
    orig = s
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError("invalid duration %r" % orig)
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DURATION.match(s, pos)
        if not m:
            raise ValueError("invalid duration %r" % orig)
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def config_from_env(environ: Optional[Mapping[str, str]] = None) -> Config:
    """Reads the pod's environment (os.environ when None). A variable that
    is set but malformed raises ConfigError naming it."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str:
        return env.get(name, "").strip()

    errs: List[str] = []
    c = Config(
        mode=get(ENV_MODE), catalog_file=get(ENV_CATALOG_FILE), key_prefix=get(ENV_KEY_PREFIX),
        event_logger_url=get(ENV_EVENT_LOGGER_URL), log_level=get(ENV_LOG_LEVEL),
        event_logger_token=get(ENV_EVENT_LOGGER_TOKEN),
        redis=RedisConfig(
            topology=get(ENV_REDIS_TOPOLOGY), master_name=get(ENV_REDIS_MASTER_NAME),
            username=get(ENV_REDIS_USERNAME), ca_file=get(ENV_REDIS_TLS_CA_FILE),
            server_name=get(ENV_REDIS_TLS_SERVER_NAME), client_cert_file=get(ENV_REDIS_TLS_CERT_FILE),
            client_key_file=get(ENV_REDIS_TLS_KEY_FILE), dial_timeout=0.0,
            # The password is taken as it is: white space may be part of it.
            password=env.get(ENV_REDIS_PASSWORD, ""),
        ),
    )
    if c.mode not in ("", MODE_BACKTEST, MODE_LIVE):
        errs.append('%s="%s": must be Backtest or Live' % (ENV_MODE, c.mode))
    c.redis.addrs = [a.strip() for a in get(ENV_REDIS_ADDRS).split(",") if a.strip()]
    v = get(ENV_REDIS_DB)
    if v:
        try:
            n = int(v, 10)
            if n < 0 or not v.lstrip("+-").isdigit():
                raise ValueError
            c.redis.db = n
        except ValueError:
            errs.append('%s="%s": must be a database number' % (ENV_REDIS_DB, v))

    def boolean(name: str) -> bool:
        v = get(name)
        if not v:
            return False
        if v in _TRUE:
            return True
        if v not in _FALSE:
            errs.append('%s="%s": must be true or false' % (name, v))
        return False

    c.redis.tls = boolean(ENV_REDIS_TLS)
    c.redis.insecure_skip_verify = boolean(ENV_REDIS_TLS_INSECURE)

    def duration(name: str) -> float:
        v = get(name)
        if not v:
            return 0.0
        try:
            d = parse_duration(v)
        except ValueError:
            d = 0.0
        if d <= 0:
            errs.append('%s="%s": must be a positive duration such as 2s' % (name, v))
        return d

    c.redis.dial_timeout = duration(ENV_REDIS_DIAL_TIMEOUT)
    c.health_interval = duration(ENV_HEALTH_INTERVAL)
    if c.event_logger_url:
        u = urlparse(c.event_logger_url)
        if u.scheme not in ("http", "https") or not u.netloc:
            errs.append('%s="%s": must be an http(s) URL' % (ENV_EVENT_LOGGER_URL, c.event_logger_url))
    if not c.redis.topology:
        c.redis.topology = "Standalone"
    if c.redis.dial_timeout <= 0:
        c.redis.dial_timeout = DEFAULT_DIAL_TIMEOUT
    if errs:
        raise ConfigError("the pod's environment: " + "; ".join(errs))
    return c
