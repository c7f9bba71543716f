#!/usr/bin/env bash
# Makes sure redis-server is installed: tests start their own redis-server
# processes on free ports and never use one that is already running.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
	exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "[ensure-redis] redis-server not found: installing it with apt-get" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends redis-server >/dev/null
	# The package starts a system service; tests never use it, stop it so it
	# holds no port.
	(command -v systemctl >/dev/null && systemctl stop redis-server) >/dev/null 2>&1 || true
	(command -v service >/dev/null && service redis-server stop) >/dev/null 2>&1 || true
	command -v redis-server >/dev/null && exit 0
fi
echo "redis-server is required by the tests and was not found." >&2
echo "Install it (Debian/Ubuntu: apt-get install redis-server), or run make test as root to let it install itself." >&2
exit 1
