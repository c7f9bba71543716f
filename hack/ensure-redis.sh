#!/usr/bin/env bash
# Makes sure redis-server is installed: tests and make run start their own
# redis-server processes on free ports and never use one that is already
# running.
exec "$(dirname "$0")/ensure-packages.sh" redis-server
