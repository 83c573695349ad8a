#!/usr/bin/env bash
# Makes sure a redis-server binary exists. Tests start their own server on a free port
# (never a mock), so nothing needs to be running; CI=true makes a missing binary fatal.
set -euxo pipefail
if ! command -v redis-server >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq redis-server
fi
redis-server --version
