#!/usr/bin/env bash
# redis-cluster.sh start|stop|status|url: a local Redis Cluster of three masters, one
# replica each, on 127.0.0.1 ports REDIS_CLUSTER_PORT .. +5 (bus ports +10000).
#
# Each node is an ordinary redis.sh instance (AOF, noeviction) started with cluster
# options, its data, log and PID file in $REDIS_CLUSTER_DIR/<port>. `start` creates the
# cluster once (redis-cli --cluster create); later starts rejoin it from each node's
# nodes.conf. It waits until every node sees cluster_state:ok with all 16384 slots
# served and every replica linked to its master, then prints the cluster's URL.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

REDIS_CLUSTER_PORT="${REDIS_CLUSTER_PORT:-7000}"
REDIS_CLUSTER_DIR="${REDIS_CLUSTER_DIR:-$LOCAL_STATE_DIR/redis-cluster}"
# Short, so a failover after a master dies takes seconds, not the default 15 s; and a
# replica's full resync (after a failover) starts at once, not 5 s later.
REDIS_CLUSTER_NODE_TIMEOUT_MS="${REDIS_CLUSTER_NODE_TIMEOUT_MS:-3000}"
NODES=6

ports() { seq "$REDIS_CLUSTER_PORT" $((REDIS_CLUSTER_PORT + NODES - 1)); }

node() {  # node PORT ACTION [OPTIONS...]: redis.sh for one node
  local port="$1"
  shift
  REDIS_PORT="$port" REDIS_DIR="$REDIS_CLUSTER_DIR/$port" "$LOCAL_DIR/redis.sh" "$@"
}

info_field() {  # info_field PORT SECTION FIELD
  # shellcheck disable=SC2086  # SECTION is a command of several words
  redis-cli -p "$1" $2 2>/dev/null | tr -d '\r' | sed -n "s/^$3://p"
}

healthy() {
  local port
  for port in $(ports); do
    [ "$(info_field "$port" "cluster info" cluster_state)" = ok ] || return 1
    [ "$(info_field "$port" "cluster info" cluster_slots_ok)" = 16384 ] || return 1
    [ "$(info_field "$port" "cluster info" cluster_known_nodes)" = "$NODES" ] || return 1
    if [ "$(info_field "$port" "info replication" role)" = slave ]; then
      [ "$(info_field "$port" "info replication" master_link_status)" = up ] || return 1
    fi
  done
}

start() {
  local port
  for port in $(ports); do
    node "$port" start --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout "$REDIS_CLUSTER_NODE_TIMEOUT_MS" --repl-diskless-sync-delay 0
  done
  for port in $(ports); do
    until redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; do sleep 0.1; done
  done
  if [ "$(info_field "$REDIS_CLUSTER_PORT" "cluster info" cluster_slots_assigned)" = 0 ]; then
    log "creating the cluster (3 masters, 1 replica each)"
    # shellcheck disable=SC2046
    redis-cli --cluster create $(ports | sed 's/^/127.0.0.1:/') \
      --cluster-replicas 1 --cluster-yes >"$REDIS_CLUSTER_DIR/create.log" 2>&1 ||
      die "redis-cli --cluster create failed; see $REDIS_CLUSTER_DIR/create.log"
  fi
  local deadline=$(($(date +%s) + ${LOCAL_START_TIMEOUT:-120}))
  until healthy; do
    [ "$(date +%s)" -lt "$deadline" ] || die "the cluster on ports $(ports | xargs) is not ok; see $REDIS_CLUSTER_DIR/*/redis.log"
    sleep 0.2
  done
  log "redis cluster ok: 3 masters + 3 replicas on 127.0.0.1:$REDIS_CLUSTER_PORT-$((REDIS_CLUSTER_PORT + NODES - 1))"
  url
}

url() { echo "redis://127.0.0.1:$REDIS_CLUSTER_PORT/0"; }

status() {
  local port
  for port in $(ports); do node "$port" status || return 1; done
}

stop() {
  local port
  for port in $(ports); do node "$port" stop; done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  url) url ;;
  *) die "usage: redis-cluster.sh start|stop|status|url" ;;
esac
