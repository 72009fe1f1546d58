#!/usr/bin/env bash
# run.sh: the whole pipeline on the local stack. Producer, processor and the HTTP API
# run in the background (logs in .local/logs); the dashboard runs in the foreground. Leaving the
# dashboard (Ctrl-C) stops the background services it started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

LOG_DIR="$LOCAL_STATE_DIR/logs"
mkdir -p "$LOG_DIR"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

start() {  # start NAME PORT ARGS...: a clickstream service in the background
  local name=$1 port=$2
  shift 2
  LOG_FORMAT=json METRICS_PORT="$port" clickstream "$@" >>"$LOG_DIR/$name.log" 2>&1 &
  pids+=($!)
  log "$name started (pid $!, log $LOG_DIR/$name.log)"
}

# One port each: the services share this shell's environment.
start producer "${PRODUCER_METRICS_PORT:-9101}" produce
start processor "${PROCESSOR_METRICS_PORT:-9100}" process
# The API serves its own /metrics on API_PORT; METRICS_PORT is not read by it.
start api 0 api
log "HTTP API and web view: http://${API_HOST:-127.0.0.1}:${API_PORT:-8000}/ (docs: /docs)"
METRICS_PORT="${CONSUMER_METRICS_PORT:-0}" clickstream consume
