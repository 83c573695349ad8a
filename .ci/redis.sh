#!/usr/bin/env bash
# Makes sure a redis-server binary (with TLS) and openssl exist. Tests start their own server on a free port
# (never a mock), so nothing needs to be running; a missing binary fails those tests.
set -euxo pipefail
# The TLS tests make their certificates with openssl; the fault suite uses prlimit (util-linux).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v prlimit >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}"
fi
redis-server --version
openssl version
