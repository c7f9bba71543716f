"""The message shapes and timestamps, as the Go package reads them."""

import json
import unittest
from datetime import datetime, timedelta, timezone

import stratops_messaging as sm
from stratops_messaging.message import REASON_BAD_TIMESTAMP, REASON_MISSING_TIMESTAMP, stamp_value

CAT = sm.standard(sm.MODE_LIVE)


class TimestampTest(unittest.TestCase):
    def test_reads_what_components_write(self):
        utc = timezone.utc
        cases = {
            "2024-05-12T14:00:00Z": datetime(2024, 5, 12, 14, tzinfo=utc),
            "2024-05-12T14:00:00.123456+00:00": datetime(2024, 5, 12, 14, 0, 0, 123456, tzinfo=utc),
            "2024-05-12T16:00:00+02:00": datetime(2024, 5, 12, 14, tzinfo=utc),
            "2024-05-12T14:00:00.123456": datetime(2024, 5, 12, 14, 0, 0, 123456, tzinfo=utc),
            "2024-05-12 14:00:00": datetime(2024, 5, 12, 14, tzinfo=utc),
            "2024-05-12t14:00:00.123456789z": datetime(2024, 5, 12, 14, 0, 0, 123456, tzinfo=utc),
        }
        for s, want in cases.items():
            self.assertEqual(sm.parse_timestamp(s), want, s)
            self.assertEqual(sm.parse_timestamp(s).tzinfo, utc, s)

    def test_refuses_what_is_not_a_date_and_time(self):
        for s in ["", "2024-05-12", "2024-02-30T00:00:00Z", "2024-05-12T24:00:00Z", "2024-05-12T14:00:00+0200",
                  "2024-05-12T14:00:00.Z", "yesterday", 1715522400]:
            self.assertIsNone(sm.parse_timestamp(s), s)

    def test_format_is_rfc3339_utc(self):
        t = datetime(2024, 5, 12, 16, 0, 0, 500000, tzinfo=timezone(timedelta(hours=2)))
        self.assertEqual(sm.format_timestamp(t), "2024-05-12T14:00:00.5Z")
        self.assertEqual(sm.format_timestamp(datetime(2024, 5, 12, 14)), "2024-05-12T14:00:00Z")


class DecodeTest(unittest.TestCase):
    def test_envelope(self):
        e = sm.decode_event(CAT, "risk:calculated", b' {"timestamp":"2024-05-12T14:00:00Z","component":"risk_monitor",'
                                                    b'"event":"calculated","metadata":{"alerts":["X"]}} ')
        self.assertEqual((e.shape, e.component, e.event, e.nonconforming), (sm.SHAPE_ENVELOPE, "risk_monitor", "calculated", ""))
        self.assertEqual(e.data(), {"alerts": ["X"]})
        self.assertTrue(e.payload.startswith(b"{"), "the payload without surrounding white space")

    def test_flat_takes_the_catalog_s_publisher_and_event_type(self):
        raw = b'{"timestamp": "2024-05-12T14:00:00.123456", "trigger": "GAS_FEE_PAID", "wei": 123456789012345678901234}'
        e = sm.decode_event(CAT, "position:updated", raw)
        self.assertEqual((e.shape, e.component, e.event), (sm.SHAPE_FLAT, "position_monitor", "updated"))
        self.assertEqual(e.payload, raw, "the payload as it came")
        self.assertEqual(e.data()["wei"], 123456789012345678901234)

    def test_no_timestamp_is_nonconforming_but_an_event(self):
        now = datetime(2024, 1, 1, tzinfo=timezone.utc)
        e = sm.decode_event(CAT, "pnl:calculated", b'{"pnl": 1}', received=now)
        self.assertEqual((e.nonconforming, e.timestamp), (REASON_MISSING_TIMESTAMP, now))
        e = sm.decode_event(CAT, "pnl:calculated", b'{"timestamp": "soon"}', received=now)
        self.assertEqual(e.nonconforming, REASON_BAD_TIMESTAMP)

    def test_invalid(self):
        for raw, reason in [(b"not json", "invalid_json"), (b"[1,2]", "not_object"), (b'{"x": NaN}', "invalid_json"),
                            (b"{" + b'"a":"' + b"x" * (1 << 20) + b'"}', "too_large")]:
            with self.assertRaises(sm.InvalidMessage) as cm:
                sm.decode_event(CAT, "pnl:calculated", raw)
            self.assertEqual(cm.exception.reason, reason, raw[:20])


class EncodeTest(unittest.TestCase):
    def test_envelope_round_trips(self):
        t = datetime(2024, 5, 12, 14, tzinfo=timezone.utc)
        raw = sm.envelope(t, "pnl_calculator", "calculated", {"pnl": 1238.45})
        self.assertEqual(json.loads(raw), {"timestamp": "2024-05-12T14:00:00Z", "component": "pnl_calculator",
                                           "event": "calculated", "metadata": {"pnl": 1238.45}})
        self.assertEqual(json.loads(sm.envelope(t, "a", "b"))["metadata"], {})

    def test_stamp_only_objects_without_a_timestamp(self):
        t = datetime(2024, 5, 12, 14, tzinfo=timezone.utc)
        self.assertEqual(stamp_value(b'{"a":1}', t), b'{"timestamp":"2024-05-12T14:00:00Z","a":1}')
        self.assertEqual(stamp_value(b"{}", t), b'{"timestamp":"2024-05-12T14:00:00Z"}')
        self.assertEqual(stamp_value(b'{"timestamp":"x"}', t), b'{"timestamp":"x"}')
        self.assertEqual(stamp_value(b"[1]", t), b"[1]")


class DurationTest(unittest.TestCase):
    def test_go_durations(self):
        self.assertEqual(sm.parse_duration("1m30.5s"), 90.5)
        self.assertAlmostEqual(sm.parse_duration("250ms"), 0.25)
        self.assertEqual(sm.parse_duration("0"), 0)
        for bad in ["", "2", "1d", "s", "1.5.5s"]:
            with self.assertRaises(ValueError, msg=bad):
                sm.parse_duration(bad)


if __name__ == "__main__":
    unittest.main()
