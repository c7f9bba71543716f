"""The catalog a Strategy follows: its channels (publisher, subscribers)
and keys (writer, TTL). A pod finds its Strategy's catalog at
STRATOPS_CATALOG_FILE; without one, the standard's own applies (bundled as
standard_catalog.json, generated from the Go package's catalog)."""

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .config import MODE_BACKTEST, parse_duration

EVENTS_HISTORY = "events:history"
EVENTS_LOGGED = "events:logged"


@dataclass
class Channel:
    name: str
    publisher: str = ""
    subscribers: List[str] = field(default_factory=list)
    min_subscribers: int = 0


@dataclass
class Key:
    name: str
    writer: str = ""
    ttl: float = 0.0  # seconds; 0: persistent
    max_age: float = 0.0  # seconds; 0: none

    @property
    def persistent(self) -> bool:
        return self.ttl <= 0


@dataclass
class Catalog:
    mode: str
    key_prefix: str = ""
    channels: List[Channel] = field(default_factory=list)
    keys: List[Key] = field(default_factory=list)

    def channel(self, name: str) -> Optional[Channel]:
        return self._channels().get(name)

    def key(self, name: str) -> Optional[Key]:
        return {k.name: k for k in self.keys}.get(name)

    def publisher(self, channel: str) -> str:
        """The component that publishes on a channel: the catalog's, or
        for a channel it does not name, the part before the colon."""
        c = self.channel(channel)
        if c is not None and c.publisher:
            return c.publisher
        return channel.split(":", 1)[0]

    def channel_name(self, name: str) -> str:
        return self.key_prefix + name

    def key_name(self, name: str) -> str:
        return self.key_prefix + name

    def _channels(self) -> Dict[str, Channel]:
        return {c.name: c for c in self.channels}


def event_type(channel: str) -> str:
    """A channel's {event_type}: "updated" on "position:updated"."""
    _, _, kind = channel.partition(":")
    return kind


def _duration(v) -> float:
    return parse_duration(v) if v else 0.0


def parse_catalog(data) -> Catalog:
    """A catalog as the operator writes it (its JSON)."""
    raw = json.loads(data)
    return Catalog(
        mode=raw.get("mode", ""),
        key_prefix=raw.get("keyPrefix", ""),
        channels=[Channel(name=c["name"], publisher=c.get("publisher", ""), subscribers=list(c.get("subscribers") or []),
                          min_subscribers=int(c.get("minSubscribers", 0))) for c in raw.get("channels") or []],
        keys=[Key(name=k["name"], writer=k.get("writer", ""), ttl=_duration(k.get("ttl")), max_age=_duration(k.get("maxAge")))
              for k in raw.get("keys") or []],
    )


def standard(mode: str) -> Catalog:
    """The standard's full catalog for a mode: 6 channels and 9 keys."""
    with open(os.path.join(os.path.dirname(__file__), "standard_catalog.json"), "rb") as f:
        c = parse_catalog(f.read())
    c.mode = mode
    return c


def load_catalog(path: str, mode: str) -> Catalog:
    """The catalog at path, or the standard's for mode when path is empty."""
    if not path:
        return standard(mode or MODE_BACKTEST)
    with open(path, "rb") as f:
        c = parse_catalog(f.read())
    if not c.mode:
        c.mode = mode
    return c
