package messaging

import (
	"testing"
)

// BenchmarkDecodeEvent measures decoding each shape of the standard, as
// the event logger does for every message it receives.
func BenchmarkDecodeEvent(b *testing.B) {
	cat := Standard(ModeLive)
	for _, tc := range []struct{ name, payload string }{
		{"envelope", `{"timestamp":"2024-05-12T14:00:00Z","component":"position_monitor","event":"updated","metadata":{"trigger":"GAS_FEE_PAID","changes_count":1}}`},
		{"flat", `{"timestamp": "2024-05-12T14:00:00.123456", "trigger": "GAS_FEE_PAID"}`},
		{"flat-large", `{"timestamp": "2024-05-12T14:00:00.123456+00:00", "overall_status": "WARNING", "alerts": ["BINANCE_MARGIN_WARNING", "AAVE_HEALTH_FACTOR"], "exposures": {"eth": -5.12, "btc": 0.25, "usdc": 120034.5}, "net_delta_eth": -5.12, "seq": 123456789012345678901234}`},
	} {
		payload := []byte(tc.payload)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, err := cat.DecodeEvent("position:updated", payload, DecodeOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
