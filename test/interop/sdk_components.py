"""The Redis messaging standard's five components, rewritten on the
stratops_messaging package (sdk/python): each connects from the pod's
environment (one client, one connection, as separate processes would
have), publishes its event and its state in one round trip with the
catalog's TTL, and subscribes with the package's decoding.

Usage: sdk_components.py POSITION_UPDATES

Every message carries "seq", the position update it follows from, so that
the test can find each one in the history. Once the position monitor has
published POSITION_UPDATES times the components keep listening until
SIGTERM.
"""

import signal
import sys
import threading
import time

import stratops_messaging as sm

updates = int(sys.argv[1])


class PositionMonitor:
    def __init__(self):
        self.bus = sm.connect()

    def update(self, seq):
        self.bus.publish_state("position:updated", {"trigger": "GAS_FEE_PAID", "seq": seq},
                               "position:snapshot", {"wallet": {"eth": 12.5, "wei": 123456789012345678901234},
                                                     "cex_accounts": {}, "perp_positions": {}})


class ExposureMonitor:
    def __init__(self):
        self.bus = sm.connect()
        self.bus.subscribe(self.on_position, "position:updated")

    def on_position(self, e):
        seq = e.data()["seq"]
        self.bus.publish_state("exposure:calculated", {"net_delta_eth": -5.12, "seq": seq},
                               "exposure:current", {"net_delta_eth": -5.12})


class RiskMonitor:
    def __init__(self):
        self.bus = sm.connect()
        self.bus.subscribe(self.on_exposure, "exposure:calculated")

    def on_exposure(self, e):
        seq = e.data()["seq"]
        self.bus.publish_state("risk:calculated", {"overall_status": "WARNING", "alerts": ["BINANCE_MARGIN_WARNING"], "seq": seq},
                               "risk:current", {"overall_status": "WARNING"})


class PnLCalculator:
    def __init__(self):
        self.bus = sm.connect()
        self.bus.subscribe(self.on_risk, "risk:calculated")

    def on_risk(self, e):
        seq = e.data()["seq"]
        self.bus.publish_state("pnl:calculated", {"pnl_cumulative": 1238.45, "seq": seq},
                               "pnl:current", {"pnl_cumulative": 1238.45})
        self.bus.set_state("pnl:hourly_series", {"series": [1200.0, 1238.45]})


class StrategyManager:
    def __init__(self):
        self.bus = sm.connect()
        self.bus.subscribe(self.on_risk, "risk:calculated")

    def on_risk(self, e):
        seq = e.data()["seq"]
        self.bus.publish_state("strategy:instructions", {"instruction_count": 2, "priority": "CRITICAL", "seq": seq},
                               "strategy:rebalancing", {"instructions": [{"action": "REBALANCE"}, {"action": "HEDGE"}]})


config = sm.connect()
config.set_state("config:strategy", {"name": "eth-basis"})
config.set_state("config:initial_state", {"eth": 12.5})

# Subscribers first: subscribe() returns once Redis confirmed it.
components = [ExposureMonitor(), RiskMonitor(), PnLCalculator(), StrategyManager()]
position = PositionMonitor()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
for seq in range(1, updates + 1):
    if stop.is_set():
        break
    position.update(seq)
    time.sleep(0.05)
print("published", updates, "position updates", flush=True)
stop.wait()
for c in components + [position, config]:
    c.bus.close() if hasattr(c, "bus") else c.close()
