#!/usr/bin/env bash
# down.sh: stop exactly the broker and Redis (single or cluster) that up.sh started (by
# their PID files).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$LOCAL_DIR/kafka.sh" stop
"$LOCAL_DIR/redis.sh" stop
"$LOCAL_DIR/redis-cluster.sh" stop
log "stopped"
