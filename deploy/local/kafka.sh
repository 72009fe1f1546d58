#!/usr/bin/env bash
# kafka.sh start|stop|status|serve: a single-node Apache Kafka 4.x broker in KRaft mode,
# run from its Maven Central jars.
#
# `make up` runs `start` (detached, PID file in $KAFKA_DIR); a chaos run's private broker
# (load/kafka_server.py) runs `serve` (foreground, exec'd, so its parent can kill and
# restart it). KAFKA_PORT, KAFKA_CONTROLLER_PORT, KAFKA_DIR and KAFKA_HEAP_OPTS choose
# the instance.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

KAFKA_DIR="${KAFKA_DIR:-$LOCAL_STATE_DIR/kafka}"
PID_FILE="$KAFKA_DIR/kafka.pid"

require_java() {
  command -v java >/dev/null || die "Java 17+ is required to run the local Kafka broker (Debian: apt-get install openjdk-17-jre-headless)"
  local major
  major="$(java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]; exit}')"
  [ "${major:-0}" -ge 17 ] || die "Java 17+ is required to run Kafka 4.x; found Java ${major:-unknown}"
}

fetch_jars() {
  if [ -f "$KAFKA_JARS_DIR/.complete" ] && cmp -s "$LOCAL_DIR/kafka-pom.xml" "$KAFKA_JARS_DIR/.pom.xml"; then
    return 0
  fi
  command -v mvn >/dev/null || die "Maven is required once to fetch the Kafka jars from Maven Central (Debian: apt-get install maven)"
  log "fetching Kafka jars with Maven into $KAFKA_JARS_DIR"
  rm -rf "$KAFKA_JARS_DIR"
  mkdir -p "$KAFKA_JARS_DIR"
  mvn -q -B -f "$LOCAL_DIR/kafka-pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_JARS_DIR" >&2
  cp "$LOCAL_DIR/kafka-pom.xml" "$KAFKA_JARS_DIR/.pom.xml"
  touch "$KAFKA_JARS_DIR/.complete"
}

# java_cmd MAIN ARGS...: the java command line for one of Kafka's main classes.
java_cmd() {
  # shellcheck disable=SC2206
  JAVA_CMD=(java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -Djava.awt.headless=true
    -Dkafka.logs.dir="$KAFKA_DIR/logs"
    -Dlog4j2.configurationFile="$LOCAL_DIR/log4j2.xml"
    -cp "$KAFKA_JARS_DIR/*" "$@")
}

kafka_java() { java_cmd "$@"; "${JAVA_CMD[@]}"; }

configure_and_format() {
  mkdir -p "$KAFKA_DIR/logs" "$KAFKA_DIR/data"
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
      -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
      -e "s|@LOG_DIRS@|$KAFKA_DIR/data|g" \
      "$LOCAL_DIR/server.properties.in" >"$KAFKA_DIR/server.properties"
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    local cluster_id
    cluster_id="$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    log "formatting KRaft storage (cluster id $cluster_id)"
    kafka_java kafka.tools.StorageTool format --standalone \
      -t "$cluster_id" -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/logs/format.log" 2>&1 \
      || { cat "$KAFKA_DIR/logs/format.log" >&2; die "formatting Kafka storage failed"; }
  fi
}

start() {
  if pid_alive "$PID_FILE" kafka.Kafka; then
    log "kafka already running (pid $(cat "$PID_FILE"), 127.0.0.1:$KAFKA_PORT)"
    return 0
  fi
  require_java
  fetch_jars
  configure_and_format
  java_cmd kafka.Kafka "$KAFKA_DIR/server.properties"
  # setsid: the broker outlives the shell (and make) that started it.
  setsid "${JAVA_CMD[@]}" </dev/null >"$KAFKA_DIR/logs/stdout.log" 2>&1 &
  echo $! >"$PID_FILE"
  log "kafka started (pid $(cat "$PID_FILE"), 127.0.0.1:$KAFKA_PORT, logs in $KAFKA_DIR/logs)"
}

# serve: the same broker in the foreground; the script becomes the JVM.
serve() {
  require_java
  fetch_jars
  configure_and_format
  java_cmd kafka.Kafka "$KAFKA_DIR/server.properties"
  exec "${JAVA_CMD[@]}" </dev/null >>"$KAFKA_DIR/logs/stdout.log" 2>&1
}

case "${1:-}" in
  start) start ;;
  serve) serve ;;
  stop) stop_pid "$PID_FILE" kafka.Kafka ;;
  status) pid_alive "$PID_FILE" kafka.Kafka ;;
  *) die "usage: kafka.sh start|stop|status|serve" ;;
esac
