"""The Redis messaging standard's five components, written as its
"Component Pub/Sub Patterns" section writes them, with redis-py.

Made runnable: the payload dicts go through json.dumps, subscriptions are
redis-py pub/sub handlers, one connection per component (as separate
processes would have). Timestamps are Python's own, aware
(datetime.now(timezone.utc).isoformat()) and naive
(datetime.utcnow().isoformat()).

Usage: standard_components.py RECORD_FILE POSITION_UPDATES

Redis comes from the environment the operator gives an engine
(STRATOPS_REDIS_ADDRS, STRATOPS_REDIS_PASSWORD, STRATOPS_REDIS_USERNAME).
Every message published is appended to RECORD_FILE as a JSON line
{"channel": ..., "payload": ...}; once the position monitor has published
POSITION_UPDATES times the components keep listening until SIGTERM.
"""

import json
import os
import signal
import sys
import threading
import time
import warnings
from datetime import datetime, timezone

import redis

warnings.simplefilter("ignore", DeprecationWarning)  # utcnow(): what real code still calls

record_path, updates = sys.argv[1], int(sys.argv[2])
host, port = os.environ["STRATOPS_REDIS_ADDRS"].split(",")[0].rsplit(":", 1)
r = redis.Redis(
    host=host,
    port=int(port),
    username=os.environ.get("STRATOPS_REDIS_USERNAME") or None,
    password=os.environ.get("STRATOPS_REDIS_PASSWORD") or None,
)
record_lock = threading.Lock()
record = open(record_path, "a", encoding="utf-8")


def aware():
    return datetime.now(timezone.utc).isoformat()


def naive():
    return datetime.utcnow().isoformat()


def publish(channel, message):
    payload = json.dumps(message)
    r.publish(channel, payload)
    with record_lock:
        record.write(json.dumps({"channel": channel, "payload": payload}) + "\n")
        record.flush()


class PositionMonitor:
    def __init__(self):
        self.tick = 0

    def update(self):
        self.tick += 1
        timestamp = aware() if self.tick % 2 else naive()
        snapshot = {"timestamp": timestamp, "wallet": {"eth": 12.5, "wei": 123456789012345678901234}, "cex_accounts": {}, "perp_positions": {}}
        # Publishes
        publish("position:updated", {"timestamp": timestamp, "trigger": "GAS_FEE_PAID"})
        r.set("position:snapshot", json.dumps(snapshot), ex=3600)
        # Subscribes
        # (None - Position Monitor is first in chain)


class ExposureMonitor:
    def _on_position_update(self, message):
        json.loads(message["data"])
        timestamp = aware()
        exposure_data = {"timestamp": timestamp, "net_delta_eth": -5.12}
        publish("exposure:calculated", {"timestamp": timestamp, "net_delta_eth": -5.12})
        r.set("exposure:current", json.dumps(exposure_data), ex=3600)


class RiskMonitor:
    def _on_exposure_update(self, message):
        json.loads(message["data"])
        timestamp = naive()
        risk_data = {"timestamp": timestamp, "overall_status": "WARNING", "alerts": ["BINANCE_MARGIN_WARNING"]}
        publish("risk:calculated", {"timestamp": timestamp, "overall_status": "WARNING", "alerts": ["BINANCE_MARGIN_WARNING"]})
        r.set("risk:current", json.dumps(risk_data), ex=3600)


class PnLCalculator:
    def _on_risk_update(self, message):
        json.loads(message["data"])
        timestamp = aware()
        pnl_data = {"timestamp": timestamp, "pnl_cumulative": 1238.45}
        publish("pnl:calculated", {"timestamp": timestamp, "pnl_cumulative": 1238.45})
        r.set("pnl:current", json.dumps(pnl_data), ex=3600)
        r.set("pnl:hourly_series", json.dumps({"timestamp": timestamp, "series": [1200.0, 1238.45]}), ex=86400)


class StrategyManager:
    def _on_risk_update(self, message):
        json.loads(message["data"])
        timestamp = naive()
        instructions = {"timestamp": timestamp, "instructions": [{"action": "REBALANCE"}, {"action": "HEDGE"}]}
        publish("strategy:instructions", {"timestamp": timestamp, "instruction_count": 2, "priority": "CRITICAL"})
        r.set("strategy:rebalancing", json.dumps(instructions), ex=3600)


def subscribe(channel, callback):
    p = r.pubsub(ignore_subscribe_messages=True)
    p.subscribe(**{channel: callback})
    return p.run_in_thread(sleep_time=0.01, daemon=True)


# Persistent (no expiry)
r.set("config:strategy", json.dumps({"timestamp": aware(), "name": "eth-basis"}))
r.set("config:initial_state", json.dumps({"timestamp": naive(), "eth": 12.5}))

listened = ("position:updated", "exposure:calculated", "risk:calculated")
already = sum(n for _, n in r.pubsub_numsub(*listened))  # the event logger's
threads = [
    subscribe("position:updated", ExposureMonitor()._on_position_update),
    subscribe("exposure:calculated", RiskMonitor()._on_exposure_update),
    subscribe("risk:calculated", PnLCalculator()._on_risk_update),
    subscribe("risk:calculated", StrategyManager()._on_risk_update),
]
# Wait until Redis confirms every subscription: what is published after
# this is received.
while sum(n for _, n in r.pubsub_numsub(*listened)) < already + 4:
    time.sleep(0.01)

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
position = PositionMonitor()
for _ in range(updates):
    if stop.is_set():
        break
    position.update()
    time.sleep(0.05)
print("published", updates, "position updates", flush=True)
stop.wait()
for t in threads:
    t.stop()
