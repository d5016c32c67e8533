#!/bin/sh
# `redis-server ARGS` runs with protected mode off (as in the public image): without a config file Redis
# would refuse clients from other containers.
set -eu
if [ "${1:-}" = redis-server ]; then
    shift
    set -- redis-server --protected-mode no "$@"
fi
exec "$@"
