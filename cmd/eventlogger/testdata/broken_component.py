"""A component that breaks the messaging standard on purpose, for the
conformance check's test. With redis-py, from the pod's environment:

  - position:updated with naive but valid timestamps (fine: read as UTC)
  - position:snapshot written with a TTL of 60 s (the policy: 1 h)
  - exposure:calculated without a timestamp (nonconforming)
  - risk:calculated not JSON (invalid)
  - orders:placed, a channel outside the catalog
"""

import json
import os
import signal
import threading
from datetime import datetime

import redis

host, port = os.environ["STRATOPS_REDIS_ADDRS"].split(",")[0].rsplit(":", 1)
prefix = os.environ.get("STRATOPS_KEY_PREFIX", "")
r = redis.Redis(host=host, port=int(port))
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
for i in range(5):
    naive = datetime.utcnow().isoformat()
    r.publish(prefix + "position:updated", json.dumps({"timestamp": naive, "trigger": "GAS_FEE_PAID"}))
    r.set(prefix + "position:snapshot", json.dumps({"timestamp": naive, "wallet": {}}), ex=60)
    r.publish(prefix + "exposure:calculated", json.dumps({"net_delta_eth": -5.12}))
    r.publish(prefix + "risk:calculated", "WARNING: margin")
    r.publish(prefix + "orders:placed", json.dumps({"timestamp": naive, "order": 1}))
    stop.wait(0.1)
stop.wait()
