"""stratops_messaging: the stratops Redis messaging standard for Python
components, on redis-py. See connect()."""

from .catalog import Catalog, Channel, Key, event_type, load_catalog, parse_catalog, standard
from .client import Client, KeyNotFound, RedisRequired, State, connect
from .config import (MODE_BACKTEST, MODE_LIVE, Config, ConfigError, RedisConfig, config_from_env,
                     parse_duration)
from .message import (SHAPE_ENVELOPE, SHAPE_FLAT, Event, InvalidMessage, decode_event, envelope,
                      format_timestamp, parse_timestamp)

__all__ = [
    "Catalog", "Channel", "Key", "event_type", "load_catalog", "parse_catalog", "standard",
    "Client", "KeyNotFound", "RedisRequired", "State", "connect",
    "MODE_BACKTEST", "MODE_LIVE", "Config", "ConfigError", "RedisConfig", "config_from_env", "parse_duration",
    "SHAPE_ENVELOPE", "SHAPE_FLAT", "Event", "InvalidMessage", "decode_event", "envelope",
    "format_timestamp", "parse_timestamp",
]
