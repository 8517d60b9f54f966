#!/usr/bin/env sh
# Makes redis-server present for the test suite (tests/e2e/test_scaling.py starts its own on a unix socket).
# Installed with apt-get on Debian/Ubuntu when missing (as root, or through sudo); elsewhere a clear error.
set -eu
if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="none"; fi
    if [ "$SUDO" != none ]; then
        echo "tools/install-redis.sh: installing redis-server (apt-get) for the tests" >&2
        $SUDO apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
        command -v redis-server >/dev/null 2>&1 && exit 0
    fi
fi
echo "tools/install-redis.sh: the tests need redis-server on the PATH: install it (apt-get install redis-server," \
    "brew install redis, dnf install redis) and run the test command again" >&2
exit 1
