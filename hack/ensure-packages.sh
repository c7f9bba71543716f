#!/usr/bin/env bash
# Makes sure the Debian packages the tests use are installed, installing the
# missing ones with apt-get when run as root. Each package is checked by
# what the tests use of it, not by dpkg alone:
#   redis-server   the redis-server binary (tests start their own on free ports;
#                  Debian's has TLS, and runs Sentinels with --sentinel)
#   redis-tools    redis-cli (--cluster create, for the Cluster tests)
#   python3-redis  redis-py for Debian's /usr/bin/python3 (the interop test
#                  runs the standard's Python components with it; another
#                  python3 may come first on PATH)
#   python3-venv, python3-setuptools, python3-wheel
#                  a venv with pip, and what pip needs to build the Python
#                  package without an index (--no-build-isolation --no-index)
#   prometheus     promtool (the alert rules' checks and unit tests) and the
#                  prometheus server make run starts on a free port
#   chromium       headless Chromium (make screenshot)
set -euo pipefail

present() {
	case "$1" in
	redis-server) command -v redis-server >/dev/null 2>&1 ;;
	redis-tools) command -v redis-cli >/dev/null 2>&1 ;;
	python3-redis) [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import redis' >/dev/null 2>&1 ;;
	python3-venv) [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 ;;
	python3-setuptools) [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import setuptools' >/dev/null 2>&1 ;;
	python3-wheel) [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import wheel' >/dev/null 2>&1 ;;
	prometheus) command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 ;;
	chromium) command -v chromium >/dev/null 2>&1 ;;
	*) dpkg -s "$1" >/dev/null 2>&1 ;;
	esac
}

missing=()
for p in "$@"; do
	present "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "[ensure-packages] installing ${missing[*]} with apt-get" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# redis-server's package starts a system service; tests never use it,
	# so stop it and let it hold no port.
	(command -v systemctl >/dev/null && systemctl stop redis-server) >/dev/null 2>&1 || true
	(command -v service >/dev/null && service redis-server stop) >/dev/null 2>&1 || true
	# Nor is the system Prometheus (make run starts its own).
	(command -v systemctl >/dev/null && systemctl stop prometheus prometheus-node-exporter) >/dev/null 2>&1 || true
	(command -v service >/dev/null && service prometheus stop) >/dev/null 2>&1 || true
	still=()
	for p in "${missing[@]}"; do
		present "$p" || still+=("$p")
	done
	[ ${#still[@]} -eq 0 ] && exit 0
	missing=("${still[@]}")
fi
echo "The tests need these Debian packages, which are missing: ${missing[*]}" >&2
echo "Install them (apt-get install ${missing[*]}), or run make test as root to let it install them." >&2
exit 1
