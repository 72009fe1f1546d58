#!/usr/bin/env bash
# up.sh: start (or reuse) the local Kafka broker and Redis, and wait until both answer.
# REDIS_MODE=cluster starts the local Redis Cluster (redis-cluster.sh) instead of the
# single Redis; services reach it with REDIS_CLUSTER=true and the URL printed at the end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

REDIS_MODE="${REDIS_MODE:-single}"
case "$REDIS_MODE" in
  single | cluster) ;;
  *) die "REDIS_MODE is single or cluster, not '$REDIS_MODE'" ;;
esac

started=$(date +%s.%N)
if [ "$REDIS_MODE" = cluster ]; then
  redis_url="$("$LOCAL_DIR/redis-cluster.sh" start) (REDIS_CLUSTER=true)"
else
  "$LOCAL_DIR/redis.sh" start
  redis_url="redis://127.0.0.1:$REDIS_PORT/0"
fi
"$LOCAL_DIR/kafka.sh" start

if ! command -v kcat >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >&2 || true
  fi
fi

deadline=$(( $(date +%s) + ${LOCAL_START_TIMEOUT:-120} ))
until [ "$REDIS_MODE" = cluster ] || redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; do
  [ "$(date +%s)" -lt "$deadline" ] || die "redis did not answer PING on 127.0.0.1:$REDIS_PORT; see $LOCAL_STATE_DIR/redis/redis.log"
  sleep 0.1
done
# A metadata request, not just an open port: the broker must have joined its own quorum.
broker_ready() {
  if command -v kcat >/dev/null; then
    kcat -b "127.0.0.1:$KAFKA_PORT" -L -m 2 2>/dev/null | grep -q "1 brokers"
  else
    python3 - "$KAFKA_PORT" <<'PY' 2>/dev/null
import sys
from confluent_kafka.admin import AdminClient
md = AdminClient({"bootstrap.servers": f"127.0.0.1:{sys.argv[1]}"}).list_topics(timeout=2)
sys.exit(0 if md.brokers else 1)
PY
  fi
}
until broker_ready; do
  "$LOCAL_DIR/kafka.sh" status || die "kafka exited during start; see $LOCAL_STATE_DIR/kafka/logs/server.log"
  [ "$(date +%s)" -lt "$deadline" ] || die "kafka did not answer a metadata request on 127.0.0.1:$KAFKA_PORT; see $LOCAL_STATE_DIR/kafka/logs/server.log"
  sleep 0.2
done
elapsed=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
log "ready in ${elapsed}s: kafka 127.0.0.1:$KAFKA_PORT, redis $redis_url"
