#!/usr/bin/env bash
# redis.sh start|stop|status|serve [redis-server options]: Debian's redis-server on
# loopback with AOF persistence.
#
# The one place that launches redis-server: `make up` runs `start` (daemonized, PID file
# in $REDIS_DIR), and a chaos run's private Redis (load/redis_server.py) runs `serve`
# (foreground, exec'd, so its parent can SIGKILL it and restart it from the AOF).
# redis-cluster.sh runs `start --cluster-enabled yes ...` once per cluster node.
# REDIS_PORT and REDIS_DIR choose the instance.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

REDIS_DIR="${REDIS_DIR:-$LOCAL_STATE_DIR/redis}"
PID_FILE="$REDIS_DIR/redis.pid"

install_redis() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "redis-server is missing; install it with: sudo apt-get install redis-server"
  log "installing redis-server from Debian"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2
}

# redis_server ARGS...: the instance's settings, then ARGS (how it runs).
redis_server() {
  install_redis
  mkdir -p "$REDIS_DIR/data"
  # Debian's packaged service is not used: this instance is the project's own.
  exec redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
    --dir "$REDIS_DIR/data" --appendonly yes --appendfsync everysec \
    --save "" --logfile "$REDIS_DIR/redis.log" --maxmemory-policy noeviction "$@"
}

# start [OPTIONS...]: daemonized; OPTIONS are added to the instance's settings.
start() {
  if pid_alive "$PID_FILE" redis-server; then
    log "redis already running (pid $(cat "$PID_FILE"), 127.0.0.1:$REDIS_PORT)"
    return 0
  fi
  # A subshell: redis_server execs, and the daemon forks away from it.
  (redis_server --daemonize yes --pidfile "$PID_FILE" "$@")
  for _ in $(seq 1 50); do [ -s "$PID_FILE" ] && break; sleep 0.1; done
  log "redis started (pid $(cat "$PID_FILE"), 127.0.0.1:$REDIS_PORT, AOF in $REDIS_DIR/data)"
}

action="${1:-}"
shift || true
case "$action" in
  start) start "$@" ;;
  serve) redis_server --daemonize no "$@" ;;
  stop) stop_pid "$PID_FILE" redis-server ;;
  status) pid_alive "$PID_FILE" redis-server ;;
  *) die "usage: redis.sh start|stop|status|serve" ;;
esac
