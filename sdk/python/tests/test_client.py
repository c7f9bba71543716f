"""The client against a real redis-server and the event logger binary, as
the Go test harness (sdk/python/python_test.go) starts them: it passes
their addresses in STRATOPS_TEST_*. Skipped when run without them."""

import json
import os
import time
import unittest
import urllib.request
from datetime import timezone

import redis

import stratops_messaging as sm

ENV = os.environ
HAVE = all(k in ENV for k in ("STRATOPS_TEST_REDIS_ADDR", "STRATOPS_TEST_LIVE_LOGGER_URL", "STRATOPS_TEST_BACKTEST_LOGGER_URL"))


def history(base_url, token):
    req = urllib.request.Request(base_url + "/state/events:history?count=1000", headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.load(resp)["value"]
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return []
        raise


def eventually(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


@unittest.skipUnless(HAVE, "run by sdk/python/python_test.go (make test), which starts Redis and the logger")
class ClientTest(unittest.TestCase):
    def setUp(self):
        self.addr = ENV["STRATOPS_TEST_REDIS_ADDR"]
        self.prefix = ENV["STRATOPS_TEST_KEY_PREFIX"] + self.id().rsplit(".", 1)[-1] + ":"
        self.token = ENV["STRATOPS_TEST_LOGGER_TOKEN"]
        host, port = self.addr.rsplit(":", 1)
        self.raw = redis.Redis(host=host, port=int(port))
        self.addCleanup(self.raw.close)

    def connect(self, mode=sm.MODE_LIVE, prefix=None, **env):
        e = {"STRATOPS_MODE": mode, "STRATOPS_REDIS_ADDRS": self.addr,
             "STRATOPS_KEY_PREFIX": self.prefix if prefix is None else prefix}
        e.update(env)
        c = sm.connect(sm.config_from_env({k: v for k, v in e.items() if v is not None}), connect_timeout=1.0)
        self.addCleanup(c.close)
        return c

    def test_live_without_redis_raises_redis_required(self):
        with self.assertRaises(sm.RedisRequired) as cm:
            self.connect(STRATOPS_REDIS_ADDRS="127.0.0.1:1")
        self.assertIn("127.0.0.1:1", str(cm.exception))
        with self.assertRaises(sm.RedisRequired):
            sm.connect(sm.config_from_env({"STRATOPS_MODE": "Live"}))

    def test_backtest_falls_back_with_a_warning_and_forwards_to_the_logger(self):
        url = ENV["STRATOPS_TEST_BACKTEST_LOGGER_URL"]
        cfg = sm.config_from_env({"STRATOPS_MODE": "Backtest", "STRATOPS_REDIS_ADDRS": "127.0.0.1:1",
                                  "STRATOPS_EVENT_LOGGER_URL": url, "STRATOPS_EVENT_LOGGER_TOKEN": self.token})
        with self.assertLogs("stratops_messaging", "WARNING") as logs:
            c = sm.connect(cfg, connect_timeout=0.5)
        self.assertTrue(c.in_memory)
        self.assertIn("in-process bus", "\n".join(logs.output))
        got = []
        c.subscribe(got.append, "pnl:calculated")
        # More than a forwarded batch (256), on two channels in turn.
        for i in range(300):
            c.publish_state("pnl:calculated", {"n": i}, "pnl:current", {"pnl": i})
        c.publish("strategy:instructions", {"instruction_count": 2})
        self.assertEqual(c.state("pnl:current").ttl is not None, True)
        self.assertTrue(eventually(lambda: len(got) == 300), "the in-process bus delivers: %d" % len(got))
        c.close()  # flushes what is queued for the logger
        logged = history(url, self.token)
        by_channel = {}
        for e in logged:
            by_channel[e["channel"]] = by_channel.get(e["channel"], 0) + 1
            self.assertEqual(e["shape"], "envelope")
            self.assertNotIn("nonconforming", e)
        self.assertEqual(by_channel, {"pnl:calculated": 300, "strategy:instructions": 1})

    def test_publish_state_writes_the_envelope_and_the_catalog_ttl(self):
        c = self.connect()
        sub = self.raw.pubsub()
        sub.subscribe(self.prefix + "position:updated")
        self.addCleanup(sub.close)
        self.assertTrue(eventually(lambda: sub.get_message(timeout=0.1)), "the subscription confirmed")
        c.publish_state("position:updated", {"trigger": "GAS_FEE_PAID"}, "position:snapshot", {"wallet": {"eth": 12.5}})
        m = eventually(lambda: sub.get_message(timeout=0.1))
        msg = json.loads(m["data"])
        self.assertEqual((msg["component"], msg["event"], msg["metadata"]), ("position_monitor", "updated", {"trigger": "GAS_FEE_PAID"}))
        self.assertTrue(msg["timestamp"].endswith("Z"))
        pttl = self.raw.pttl(self.prefix + "position:snapshot")
        self.assertTrue(3590_000 < pttl <= 3600_000, pttl)
        st = c.state("position:snapshot")
        self.assertEqual(json.loads(st.value)["wallet"], {"eth": 12.5})
        self.assertEqual(st.timestamp.tzinfo, timezone.utc)
        self.assertTrue(3590 < st.ttl <= 3600)
        c.set_state("config:strategy", {"name": "eth-basis"})
        self.assertEqual(self.raw.pttl(self.prefix + "config:strategy"), -1, "a persistent key has no TTL")
        self.assertIsNone(c.state("config:strategy").ttl)
        with self.assertRaises(sm.KeyNotFound):
            c.state("risk:current")
        with self.assertRaises(ValueError):
            c.set_state("events:history", {})
        with self.assertRaises(ValueError):
            c.publish("orders:placed", {})

    def test_subscribe_decodes_both_shapes_and_skips_what_is_not_an_event(self):
        c = self.connect()
        got = []
        c.subscribe(got.append, "risk:calculated", "exposure:calculated")
        ch = self.prefix + "risk:calculated"
        self.raw.publish(ch, json.dumps({"timestamp": "2024-05-12T14:00:00.123456", "overall_status": "WARNING"}))
        self.raw.publish(ch, b"not json")
        self.raw.publish(self.prefix + "exposure:calculated", sm.envelope(sm.parse_timestamp("2024-05-12T14:00:00Z"),
                                                                         "exposure_monitor", "calculated", {"d": -5.12}))
        self.assertTrue(eventually(lambda: len(got) == 2), got)
        flat, env = got
        self.assertEqual((flat.shape, flat.component, flat.event), (sm.SHAPE_FLAT, "risk_monitor", "calculated"))
        self.assertEqual(flat.timestamp.tzinfo, timezone.utc)
        self.assertEqual((env.shape, env.channel, env.data()), (sm.SHAPE_ENVELOPE, "exposure:calculated", {"d": -5.12}))
        self.assertEqual(c.skipped, 1)

    def test_the_logger_logs_what_the_package_publishes(self):
        url = ENV["STRATOPS_TEST_LIVE_LOGGER_URL"]
        c = self.connect(prefix=ENV["STRATOPS_TEST_KEY_PREFIX"])
        chain = ["position:updated", "exposure:calculated", "risk:calculated", "pnl:calculated", "strategy:instructions"]
        for i in range(20):
            for ch in chain:
                c.publish(ch, {"i": i})

        def logged():
            n = {}
            for e in history(url, self.token):
                if e["shape"] == "envelope" and e["message"].get("metadata", {}).get("i") is not None:
                    self.assertNotIn("nonconforming", e)
                    self.assertEqual(e["component"], c.catalog.publisher(e["channel"]))
                    n[e["channel"]] = n.get(e["channel"], 0) + 1
            return n if n == {ch: 20 for ch in chain} else None

        self.assertTrue(eventually(logged), "every event in the logger's history once")


if __name__ == "__main__":
    unittest.main()
