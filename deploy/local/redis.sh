#!/usr/bin/env bash
# redis.sh start|stop|status: Debian's redis-server on loopback with AOF persistence.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

REDIS_DIR="$LOCAL_STATE_DIR/redis"
PID_FILE="$REDIS_DIR/redis.pid"

install_redis() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "redis-server is missing; install it with: sudo apt-get install redis-server"
  log "installing redis-server from Debian"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2
}

start() {
  if pid_alive "$PID_FILE" redis-server; then
    log "redis already running (pid $(cat "$PID_FILE"), 127.0.0.1:$REDIS_PORT)"
    return 0
  fi
  install_redis
  mkdir -p "$REDIS_DIR/data"
  # Debian's packaged service is not used: this instance is the project's own.
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
    --dir "$REDIS_DIR/data" --appendonly yes --appendfsync everysec \
    --save "" --daemonize yes --pidfile "$PID_FILE" \
    --logfile "$REDIS_DIR/redis.log" --maxmemory-policy noeviction
  for _ in $(seq 1 50); do [ -s "$PID_FILE" ] && break; sleep 0.1; done
  log "redis started (pid $(cat "$PID_FILE"), 127.0.0.1:$REDIS_PORT, AOF in $REDIS_DIR/data)"
}

case "${1:-}" in
  start) start ;;
  stop) stop_pid "$PID_FILE" redis-server ;;
  status) pid_alive "$PID_FILE" redis-server ;;
  *) die "usage: redis.sh start|stop|status" ;;
esac
