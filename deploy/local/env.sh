# Shared settings of the local Kafka + Redis pair; every variable can be overridden.
LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LOCAL_DIR/../.." && pwd)"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
REDIS_PORT="${REDIS_PORT:-6379}"
# Runtime state (data, logs, PID files) stays in the project, untracked.
LOCAL_STATE_DIR="${LOCAL_STATE_DIR:-$REPO_DIR/.local}"
# Downloaded jars are shared by every checkout on the machine.
KAFKA_JARS_DIR="${KAFKA_JARS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/clickstream/kafka-jars}"

log() { printf '[local] %s\n' "$*" >&2; }
die() { printf '[local] error: %s\n' "$*" >&2; exit 1; }

# pid_alive FILE PATTERN: the PID in FILE runs a command line matching PATTERN.
pid_alive() {
  local pid
  [ -f "$1" ] || return 1
  pid="$(cat "$1")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

# stop_pid FILE PATTERN: TERM the process, wait up to 30 s, then KILL.
stop_pid() {
  local pid i
  if ! pid_alive "$1" "$2"; then rm -f "$1"; return 0; fi
  pid="$(cat "$1")"
  kill "$pid"
  for i in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$1"; return 0; }
    sleep 0.1
  done
  log "pid $pid did not stop in 30 s; killing it"
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$1"
}
