"""The standard's two message shapes, read and written as the Go package
reads and writes them: the envelope {"timestamp", "component", "event",
"metadata"}, and the flat payload of the standard's pub/sub patterns
({"timestamp": ..., "trigger": ...}), whose component is the channel's
publisher and whose event is the channel's {event_type}."""

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Optional, Tuple

from .catalog import Catalog, event_type

MAX_MESSAGE_BYTES = 1 << 20

SHAPE_ENVELOPE = "envelope"
SHAPE_FLAT = "flat"

# Why a message is not an event (invalid), or an event is nonconforming.
REASON_TOO_LARGE = "too_large"
REASON_INVALID_JSON = "invalid_json"
REASON_NOT_OBJECT = "not_object"
REASON_MISSING_TIMESTAMP = "missing_timestamp"
REASON_BAD_TIMESTAMP = "bad_timestamp"


class InvalidMessage(ValueError):
    """A message that is not an event: not a JSON object, or too large."""

    def __init__(self, reason: str, detail: str):
        super().__init__("%s: %s" % (reason, detail))
        self.reason = reason


@dataclass
class Event:
    """One decoded message of a channel. payload is the message exactly as
    it was published."""

    channel: str
    component: str
    event: str
    timestamp: datetime  # aware, UTC
    shape: str
    payload: bytes
    metadata: Any = None
    nonconforming: str = ""

    def data(self) -> Any:
        """The event's own data: an envelope's metadata, or the whole flat
        payload."""
        if self.shape == SHAPE_ENVELOPE:
            return self.metadata
        return json.loads(self.payload)


_TS = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(Z|z|[+-]\d{2}:\d{2})?$")


def parse_timestamp(s: str) -> Optional[datetime]:
    """Reads the timestamps components write, as the Go package's
    ParseTimestamp does: RFC 3339 with Z or an offset, any number of
    fractional digits; ISO 8601 without a zone, read as UTC (Python's
    utcnow().isoformat()); "T", "t" or a space between date and time. None
    when it cannot be read. The result is aware, in UTC."""
    if not isinstance(s, str):
        return None
    m = _TS.match(s)
    if not m:
        return None
    year, month, day, hour, minute, sec = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7) or "", m.group(8) or ""
    offset = 0
    if zone and zone not in ("Z", "z"):
        oh, om = int(zone[1:3]), int(zone[4:6])
        if oh > 23 or om > 59:
            return None
        offset = (oh * 3600 + om * 60) * (-1 if zone[0] == "-" else 1)
    try:
        t = datetime(year, month, day, hour, minute, sec, tzinfo=timezone.utc)
    except ValueError:
        return None
    # Microseconds: digits past them are read and dropped.
    t = t.replace(microsecond=int((frac + "000000")[:6]))
    return t - timedelta(seconds=offset)


def format_timestamp(t: datetime) -> str:
    """RFC 3339 in UTC, as few fractional digits as needed: what the
    package stamps on what it publishes. A naive datetime is taken as UTC."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    t = t.astimezone(timezone.utc)
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        s += ("." + "%06d" % t.microsecond).rstrip("0")
    return s + "Z"


def _reject_constant(name):
    raise ValueError("not JSON: " + name)


def check_object(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Tuple[bytes, dict]:
    """The message without surrounding white space, and its object, when
    it is a JSON object within the size limit; InvalidMessage otherwise."""
    if isinstance(data, str):
        data = data.encode()
    if len(data) > max_bytes:
        raise InvalidMessage(REASON_TOO_LARGE, "%d bytes, the limit is %d" % (len(data), max_bytes))
    trimmed = data.strip(b" \t\r\n")
    try:
        obj = json.loads(trimmed, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        raise InvalidMessage(REASON_INVALID_JSON, "not valid JSON") from None
    if not isinstance(obj, dict):
        raise InvalidMessage(REASON_NOT_OBJECT, "a message must be a JSON object")
    return trimmed, obj


def _timestamp_of(obj: dict) -> Tuple[Optional[datetime], str]:
    raw = obj.get("timestamp")
    if raw is None:
        return None, REASON_MISSING_TIMESTAMP
    t = parse_timestamp(raw)
    if t is None:
        return None, REASON_BAD_TIMESTAMP
    return t, ""


def decode_event(catalog: Catalog, channel: str, payload: bytes, received: Optional[datetime] = None) -> Event:
    """Decodes a message received on a channel of the catalog. Raises
    InvalidMessage for what is not an event; anything else is one. An
    event without a usable timestamp is stamped with received (now) and
    says why in nonconforming."""
    trimmed, obj = check_object(payload)
    component, event = obj.get("component"), obj.get("event")
    if isinstance(component, str) and isinstance(event, str) and component and event:
        e = Event(channel, component, event, None, SHAPE_ENVELOPE, trimmed, metadata=obj.get("metadata"))
    else:
        e = Event(channel, catalog.publisher(channel), event_type(channel), None, SHAPE_FLAT, trimmed)
    e.timestamp, e.nonconforming = _timestamp_of(obj)
    if e.nonconforming:
        e.timestamp = (received or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return e


def decode_key_value(value: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Tuple[Optional[datetime], str]:
    """A key value's timestamp, or None and the nonconforming reason.
    InvalidMessage for a value that is not a JSON object."""
    _, obj = check_object(value, max_bytes)
    return _timestamp_of(obj)


def envelope(ts: datetime, component: str, event: str, metadata: Any = None) -> bytes:
    """A notification in the standard's envelope. metadata is anything
    json.dumps encodes (bytes or str holding JSON are used as they are);
    None is written as {}."""
    md = _data(metadata)
    if md is None:
        md = b"{}"
    return b'{"timestamp":"%s","component":%s,"event":%s,"metadata":%s}' % (
        format_timestamp(ts).encode(), json.dumps(component).encode(), json.dumps(event).encode(), md)


def _data(v: Any) -> Optional[bytes]:
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray, str)):
        b = v.encode() if isinstance(v, str) else bytes(v)
        try:
            json.loads(b, parse_constant=_reject_constant)
        except ValueError:
            raise ValueError("not valid JSON") from None
        return b.strip()
    return json.dumps(v, separators=(",", ":"), allow_nan=False).encode()


def stamp_value(v: bytes, now: datetime) -> bytes:
    """Puts a timestamp first in a JSON object that has none, so that a
    key's maxAge can be checked; anything else is returned as it is."""
    if not v.startswith(b"{"):
        return v
    try:
        obj = json.loads(v)
    except ValueError:
        return v
    if not isinstance(obj, dict) or "timestamp" in obj:
        return v
    rest = v[1:].lstrip()
    sep = b"," if rest and not rest.startswith(b"}") else b""
    return b'{"timestamp":"%s"%s%s' % (format_timestamp(now).encode(), sep, v[1:])

