#!/usr/bin/env bash
# Takes the README's screenshots of make run's Prometheus: a graph of the
# Live sample's channel rates, and the alert list, during a Redis outage.
# Runs bin/stratops-local, lets the sample traffic flow, stops its Redis
# (SIGUSR1), waits for StrategyRedisLost to fire, and photographs both
# pages with headless Chromium (Debian's chromium; installed when root).
# Writes docs/images/prometheus-channel-rates.png and prometheus-alerts.png.
set -euo pipefail
cd "$(dirname "$0")/.."
TRAFFIC_SECONDS=${TRAFFIC_SECONDS:-120}
OUTAGE_SECONDS=${OUTAGE_SECONDS:-45}

hack/ensure-packages.sh prometheus chromium
[ -n "${KUBEBUILDER_ASSETS:-}" ] || { echo "KUBEBUILDER_ASSETS is not set: run make screenshot" >&2; exit 1; }
go build -o bin/stratops-local ./cmd/stratops-local
dir=$(mktemp -d)
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
bin/stratops-local --dir "$dir" --table-interval 0 >"$dir/out.log" 2>&1 &
pid=$!

state() { python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ''))" "$dir/state.json" "$1" 2>/dev/null || true; }
query() { curl -fsS --get "$prom/api/v1/query" --data-urlencode "query=$1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]["result"]))'; }
prom=""
for _ in $(seq 180); do prom=$(state prometheus); [ -n "$prom" ] && break; sleep 1; done
[ -n "$prom" ] || { cat "$dir/out.log" >&2; echo "no Prometheus" >&2; exit 1; }
echo "[screenshot] Prometheus $prom; waiting for the samples to run"
for _ in $(seq 120); do
	[ "$(query 'stratops_strategy_phase{strategy="eth-basis",phase="Running"} == 1')" = 1 ] && break
	sleep 1
done
echo "[screenshot] letting traffic flow for ${TRAFFIC_SECONDS}s"
sleep "$TRAFFIC_SECONDS"
echo "[screenshot] stopping Redis"
kill -USR1 "$pid"
for _ in $(seq 120); do
	[ "$(query 'ALERTS{alertname="StrategyRedisLost",strategy="eth-basis",alertstate="firing"}')" = 1 ] && break
	sleep 1
done
sleep "$OUTAGE_SECONDS"

shoot() {
	chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
		--disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$dir/chromium" \
		--window-size=1400,900 --virtual-time-budget=15000 --screenshot="$1" "$2" >/dev/null 2>&1
	echo "[screenshot] $1"
}
mkdir -p docs/images
expr='sum by (channel) (rate(stratops_eventlogger_messages_total{namespace="default",strategy="eth-basis"}[30s]))'
enc=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$expr")
range=$(( TRAFFIC_SECONDS + OUTAGE_SECONDS + 30 ))
shoot docs/images/prometheus-channel-rates.png "$prom/graph?g0.expr=$enc&g0.tab=0&g0.stacked=0&g0.show_exemplars=0&g0.range_input=${range}s"
alerts="$prom/alerts"
# Debian's build serves only the classic UI, under /classic/.
[ "$(curl -s -o /dev/null -w '%{http_code}' "$alerts")" = 404 ] && alerts="$prom/classic/alerts"
shoot docs/images/prometheus-alerts.png "$alerts"
