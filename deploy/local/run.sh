#!/usr/bin/env bash
# run.sh: the whole pipeline on the local stack. Producer and processor run in the
# background (logs in .local/logs); the dashboard runs in the foreground. Leaving the
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

start() {  # start NAME ARGS...: a clickstream service in the background
  local name=$1
  shift
  LOG_FORMAT=json clickstream "$@" >>"$LOG_DIR/$name.log" 2>&1 &
  pids+=($!)
  log "$name started (pid $!, log $LOG_DIR/$name.log)"
}

start producer produce
start processor process
clickstream consume
