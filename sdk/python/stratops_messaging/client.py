"""A component's client: connect() with the pod's environment, then
publish, set and read state, and subscribe, on Redis or, in a backtest
without Redis, on an in-process bus that forwards to the event logger."""

import json
import logging
import queue
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Dict, List, Optional, Tuple

import redis

from .catalog import EVENTS_HISTORY, Catalog, event_type, load_catalog
from .config import MODE_LIVE, Config, RedisConfig, config_from_env
from .message import Event, InvalidMessage, decode_event, decode_key_value, envelope, stamp_value, _data

log = logging.getLogger("stratops_messaging")


class RedisRequired(RuntimeError):
    """Live trading without a reachable Redis: the standard's rule is to
    fail fast rather than trade on an in-process bus."""


class KeyNotFound(KeyError):
    """The key has no value."""


@dataclass
class State:
    """A key's latest value."""

    value: bytes
    ttl: Optional[float]  # seconds left; None for a persistent key
    timestamp: Optional[datetime]  # the value's, aware UTC; None when unreadable


# --- buses -------------------------------------------------------------------


def _host_port(addr: str) -> Tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def _redis_kwargs(rc: RedisConfig) -> dict:
    kw = {"db": rc.db, "username": rc.username or None, "password": rc.password or None,
          "socket_connect_timeout": rc.dial_timeout, "socket_timeout": 3.0}
    if rc.tls:
        kw.update(ssl=True, ssl_ca_certs=rc.ca_file or None, ssl_certfile=rc.client_cert_file or None,
                  ssl_keyfile=rc.client_key_file or None,
                  ssl_cert_reqs=ssl.CERT_NONE if rc.insecure_skip_verify else ssl.CERT_REQUIRED,
                  ssl_check_hostname=not rc.insecure_skip_verify and not rc.server_name)
    return kw


def redis_client(rc: RedisConfig):
    """A redis-py client for the configuration: Standalone, Sentinel (the
    master of master_name) or Cluster."""
    kw = _redis_kwargs(rc)
    if rc.topology == "Sentinel":
        from redis.sentinel import Sentinel
        sentinel_kw = {k: v for k, v in kw.items() if k.startswith("ssl") or k.startswith("socket")}
        s = Sentinel([_host_port(a) for a in rc.addrs], sentinel_kwargs=sentinel_kw, **kw)
        return s.master_for(rc.master_name)
    if rc.topology == "Cluster":
        from redis.cluster import ClusterNode, RedisCluster
        kw.pop("db")
        return RedisCluster(startup_nodes=[ClusterNode(*_host_port(a)) for a in rc.addrs], **kw)
    host, port = _host_port(rc.addrs[0])
    return redis.Redis(host=host, port=port, **kw)


class RedisBus:
    kind = "redis"

    def __init__(self, client, key_prefix: str):
        self.client = client
        self.prefix = key_prefix
        self.cluster = type(client).__name__ == "RedisCluster"

    def ping(self):
        self.client.ping()

    def publish(self, channel: str, msg: bytes):
        self.client.publish(self.prefix + channel, msg)

    def publish_state(self, channel: str, msg: bytes, key: str, value: bytes, ttl: float):
        px = int(ttl * 1000) if ttl > 0 else None
        if self.cluster:
            # redis-py's cluster pipeline refuses PUBLISH: two round trips.
            self.client.publish(self.prefix + channel, msg)
            self.client.set(self.prefix + key, value, px=px)
            return
        p = self.client.pipeline(transaction=False)
        p.publish(self.prefix + channel, msg)
        p.set(self.prefix + key, value, px=px)
        p.execute()

    def set(self, key: str, value: bytes, ttl: float):
        self.client.set(self.prefix + key, value, px=int(ttl * 1000) if ttl > 0 else None)

    def get(self, key: str) -> Tuple[bytes, Optional[float]]:
        p = self.client.pipeline(transaction=False)
        p.get(self.prefix + key)
        p.pttl(self.prefix + key)
        value, pttl = p.execute()
        if value is None:
            raise KeyNotFound(key)
        return value, (pttl / 1000 if pttl >= 0 else None)

    def subscribe(self, channels: List[str], deliver: Callable[[str, bytes], None]):
        ps = self.client.pubsub()
        ps.subscribe(*[self.prefix + c for c in channels])
        # Wait for Redis to confirm: what is published after this is received.
        confirmed = 0
        deadline = time.monotonic() + 10
        while confirmed < len(channels):
            m = ps.get_message(timeout=0.1)
            if m is not None and m["type"] == "subscribe":
                confirmed += 1
            if time.monotonic() > deadline:
                ps.close()
                raise TimeoutError("subscribing to %s: not confirmed" % channels)
        stop = threading.Event()

        def run():
            while not stop.is_set():
                try:
                    m = ps.get_message(timeout=0.1)
                except (redis.ConnectionError, ValueError):
                    if stop.is_set():
                        return
                    raise
                if m is not None and m["type"] == "message":
                    ch = m["channel"].decode() if isinstance(m["channel"], bytes) else m["channel"]
                    deliver(ch[len(self.prefix):], m["data"])

        t = threading.Thread(target=run, daemon=True, name="stratops-subscription")
        t.start()
        return _Subscription(stop, t, ps.close)

    def close(self):
        self.client.close()


class MemoryBus:
    """The in-process bus of a backtest without Redis: pub/sub and keys
    with their TTLs, in this process only."""

    kind = "memory"

    def __init__(self):
        self._lock = threading.Lock()
        self._subs: Dict[str, List[queue.Queue]] = {}
        self._keys: Dict[str, Tuple[bytes, Optional[float]]] = {}

    def ping(self):
        pass

    def publish(self, channel: str, msg: bytes):
        with self._lock:
            subs = list(self._subs.get(channel, ()))
        for q in subs:
            q.put((channel, msg))

    def publish_state(self, channel, msg, key, value, ttl):
        self.publish(channel, msg)
        self.set(key, value, ttl)

    def set(self, key, value, ttl):
        with self._lock:
            self._keys[key] = (value, time.monotonic() + ttl if ttl > 0 else None)

    def get(self, key):
        with self._lock:
            value, expires = self._keys.get(key, (None, None))
            if value is not None and expires is not None and time.monotonic() >= expires:
                del self._keys[key]
                value = None
        if value is None:
            raise KeyNotFound(key)
        return value, (expires - time.monotonic() if expires is not None else None)

    def subscribe(self, channels, deliver):
        q: queue.Queue = queue.Queue()
        with self._lock:
            for c in channels:
                self._subs.setdefault(c, []).append(q)
        stop = threading.Event()

        def run():
            while not stop.is_set():
                try:
                    ch, msg = q.get(timeout=0.1)
                except queue.Empty:
                    continue
                deliver(ch, msg)

        def unsubscribe():
            with self._lock:
                for c in channels:
                    self._subs.get(c, []).remove(q)

        t = threading.Thread(target=run, daemon=True, name="stratops-subscription")
        t.start()
        return _Subscription(stop, t, unsubscribe)

    def close(self):
        pass


class _Subscription:
    def __init__(self, stop: threading.Event, thread: threading.Thread, release: Callable[[], None]):
        self._stop, self._thread, self._release = stop, thread, release

    def close(self):
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._release()


# --- forwarding to the event logger ------------------------------------------

FORWARD_BATCH = 256
FORWARD_BATCH_BYTES = 1 << 20


class Forwarder:
    """Sends what a backtest publishes on its in-process bus to the
    Strategy's event logger (POST /events?channel=C, a JSON array, the
    bearer token), in order, in batches of one channel, retrying while the
    logger is unreachable or busy."""

    def __init__(self, base_url: str, token: str, max_queue: int = 10_000, timeout: float = 10.0):
        self.url = base_url.rstrip("/") + "/events"
        self.token = token
        self.timeout = timeout
        self._q: queue.Queue = queue.Queue(maxsize=max_queue)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="stratops-forwarder")
        self._thread.start()

    def enqueue(self, channel: str, msg: bytes):
        if self._closing.is_set():
            raise RuntimeError("stratops_messaging: client closed")
        self._q.put((channel, msg))

    def close(self, timeout: float):
        """Sends what is queued, for at most timeout seconds."""
        self._closing.set()
        self._q.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self):
        pending = None
        while True:
            first = pending or self._q.get()
            pending = None
            if first is None:
                return
            batch, size = [first[1]], len(first[1])
            while len(batch) < FORWARD_BATCH:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None or nxt[0] != first[0] or size + len(nxt[1]) + 1 > FORWARD_BATCH_BYTES:
                    pending = nxt
                    break
                batch.append(nxt[1])
                size += len(nxt[1]) + 1
            self._send(first[0], batch)
            if pending is None and self._closing.is_set() and self._q.empty():
                return

    def _send(self, channel: str, batch: List[bytes]):
        body = b"[" + b",".join(batch) + b"]"
        url = self.url + "?channel=" + urllib.parse.quote(channel, safe="")
        delay = 0.1
        while True:
            req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
            if self.token:
                req.add_header("Authorization", "Bearer " + self.token)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout):
                    return
            except urllib.error.HTTPError as e:
                if e.code < 500 and e.code != 429:
                    log.error("The event logger refused forwarded events: channel=%s events=%d status=%d %s",
                              channel, len(batch), e.code, e.read(1024).decode(errors="replace").strip())
                    return
                err = "status %d" % e.code
            except (urllib.error.URLError, OSError) as e:
                err = str(e)
            log.warning("Forwarding events to the event logger failed; retrying: channel=%s events=%d error=%s",
                        channel, len(batch), err)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


# --- the client --------------------------------------------------------------


class Client:
    """What a component calls. Get one with connect()."""

    def __init__(self, catalog: Catalog, bus, forwarder: Optional[Forwarder] = None):
        self.catalog = catalog
        self.bus = bus
        self._fwd = forwarder
        self._subs: List[_Subscription] = []
        self.skipped = 0

    @property
    def mode(self) -> str:
        return self.catalog.mode

    @property
    def in_memory(self) -> bool:
        return self.bus.kind == "memory"

    def _envelope(self, channel: str, metadata) -> bytes:
        if self.catalog.channel(channel) is None:
            raise ValueError("stratops_messaging: publish: channel %r is not in the catalog" % channel)
        return envelope(datetime.now(timezone.utc), self.catalog.publisher(channel), event_type(channel), metadata)

    def _state_value(self, key: str, value) -> Tuple[bytes, float]:
        k = self.catalog.key(key)
        if k is None:
            raise ValueError("stratops_messaging: state: key %r is not in the catalog" % key)
        if key == EVENTS_HISTORY:
            raise ValueError("stratops_messaging: state: %s is written by the event logger only" % key)
        v = _data(value)
        if v is None:
            v = b"null"
        return stamp_value(v, datetime.now(timezone.utc)), k.ttl

    def _forward(self, channel: str, msg: bytes):
        if self._fwd is not None:
            self._fwd.enqueue(channel, msg)

    def publish(self, channel: str, metadata=None):
        """Publishes an event on a channel of the catalog, in the standard's
        envelope: now, the channel's publisher, its event type, metadata."""
        msg = self._envelope(channel, metadata)
        self.bus.publish(channel, msg)
        self._forward(channel, msg)

    def publish_state(self, channel: str, metadata, key: str, value):
        """Publishes an event (as publish does) and stores the key's latest
        state with the catalog's TTL, in one round trip (two on a Redis
        Cluster). value is stamped
        with a timestamp when it is an object without one."""
        msg = self._envelope(channel, metadata)
        v, ttl = self._state_value(key, value)
        self.bus.publish_state(channel, msg, key, v, ttl)
        self._forward(channel, msg)

    def set_state(self, key: str, value):
        """Stores a key's latest state with the catalog's TTL (none for a
        persistent key)."""
        v, ttl = self._state_value(key, value)
        self.bus.set(key, v, ttl)

    def state(self, key: str) -> State:
        """A key's latest value; KeyNotFound when it has none."""
        v, ttl = self.bus.get(key)
        try:
            ts, _ = decode_key_value(v, len(v) + 1)
        except InvalidMessage:
            ts = None
        return State(value=v, ttl=ttl, timestamp=ts)

    def subscribe(self, handler: Callable[[Event], None], *channels: str) -> _Subscription:
        """Calls handler with each event published on the channels, in
        order, from a thread of its own. Both shapes arrive decoded; a
        message that is not an event is skipped, logged and counted
        (skipped). Returns once Redis confirmed the subscription."""
        for ch in channels:
            if self.catalog.channel(ch) is None:
                raise ValueError("stratops_messaging: subscribe: channel %r is not in the catalog" % ch)

        def deliver(channel: str, payload: bytes):
            try:
                e = decode_event(self.catalog, channel, payload)
            except InvalidMessage as err:
                self.skipped += 1
                log.warning("Invalid message skipped: channel=%s error=%s", channel, err)
                return
            handler(e)

        sub = self.bus.subscribe(list(channels), deliver)
        self._subs.append(sub)
        return sub

    def close(self, timeout: float = 10.0):
        """Forwards what is still queued for the event logger (for at most
        timeout seconds), ends the subscriptions and closes the bus."""
        if self._fwd is not None and not self._fwd.close(timeout):
            log.error("Closing: events were still queued for the event logger after %.0fs", timeout)
        for s in self._subs:
            s.close()
        self.bus.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def connect(config: Optional[Config] = None, catalog: Optional[Catalog] = None, connect_timeout: float = 10.0) -> Client:
    """Connects as the pod's environment (config_from_env) says. Live with
    no reachable Redis raises RedisRequired; a backtest falls back to the
    in-process bus, with a warning, and forwards to the event logger when
    the environment names one."""
    if config is None:
        config = config_from_env()
    if catalog is None:
        catalog = load_catalog(config.catalog_file, config.mode)
        if config.mode:
            catalog.mode = config.mode
        if config.key_prefix:
            catalog.key_prefix = config.key_prefix
    live = catalog.mode == MODE_LIVE
    if config.redis.configured():
        bus = RedisBus(redis_client(config.redis), catalog.key_prefix)
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                bus.ping()
                return Client(catalog, bus)
            except (redis.RedisError, OSError) as e:
                err = e
            if time.monotonic() >= deadline:
                break
            time.sleep(0.25)
        bus.close()
        if live:
            raise RedisRequired("Redis is required for live trading: %s: %s" % (config.redis, err))
        log.warning("Redis unavailable, continuing without pub/sub: the backtest runs on the in-process bus: redis=%s error=%s",
                    config.redis, err)
    elif live:
        raise RedisRequired("Redis is required for live trading: no Redis configured (STRATOPS_REDIS_ADDRS)")
    fwd = Forwarder(config.event_logger_url, config.event_logger_token) if config.event_logger_url else None
    return Client(catalog, MemoryBus(), fwd)


__all__ = ["Client", "KeyNotFound", "RedisRequired", "State", "connect"]
