"""`clickstream consume`: the metrics dashboard.

On a terminal it draws a live full-screen view; in a pod's log it prints the
original example's text block per window revision; with --json it prints one
JSON line per window revision. In every mode it starts by reading back the
newest windows from the metrics topic, so the latest completed window shows at
once instead of after the next window closes.

The run, in order:
1. Check the broker and the topic (bounded retries; exit 2 with a clear
   message when either is missing).
2. Backfill: read each partition's tail (or everything, --from-beginning) up to
   its end offset at start, folding records into the WindowBook. Here and
   live, a record that fails `sanitize.admit` (undecodable, invalid, a window
   far in the future) is skipped, logged and counted, never shown.
3. Show the newest window(s): the --last N windows in text/json mode, the
   latest window and the history strip in the live view.
4. Follow the topic live: each record that changes what is shown (a new
   window, an amendment, a final revision) is shown once; offsets are committed
   manually after it is shown.
5. Stop on SIGINT/SIGTERM, or with exit 2 once the broker has been unreachable
   for DASHBOARD_GIVE_UP_SECONDS.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from confluent_kafka.admin import AdminClient

from services.common import config as cfg
from services.common import observability as obs
from services.common.config import Config, Setting, non_negative_int, positive_int
from services.common.kafka import client_config
from services.common.logging import configure, get_logger
from services.common.shutdown import Stopper
from services.common.window_record import WindowRecord
from services.consumer import dashboard
from services.consumer.reader import Backfill, MetricsReader, silent_logger
from services.consumer.sanitize import json_line
from services.consumer.status import Probe, processor_lag
from services.consumer.text import render_block
from services.consumer.windows import Update, WindowBook
from statestore import StateStore, build_record

log = get_logger("consumer")

WANTS_ARGS = True

# Records read back per partition for each window to show: revisions 1..n and
# the final one usually fit in three.
RECORDS_PER_WINDOW = 3
LAG_PROBE_INTERVAL_S = 5.0
# Windows the book remembers at least, so a late revision of a recent window still
# finds the figures it amends.
WINDOWS_KEPT_MIN = 50
# Longest poll in the live view: a Ctrl-C or a resize is answered within this.
LIVE_POLL_MAX_S = 0.25

SETTINGS = (
    Setting(
        "DASHBOARD_GROUP",
        "clickstream-dashboard",
        "consumer group for the dashboard's manual commits (lag tools)",
    ),
    Setting("DASHBOARD_HISTORY", 12, "windows in the history strip", parse=positive_int),
    Setting("DASHBOARD_REFRESH_MS", 1000, "live view refresh interval", parse=positive_int),
    Setting(
        "DASHBOARD_OUTPUT",
        "auto",
        "auto: live view on a terminal, text otherwise",
        choices=("auto", "live", "text", "json"),
    ),
    Setting(
        "DASHBOARD_LAST",
        None,
        "windows to show at start (default 1; every window with --from-beginning)",
        parse=positive_int,
        aliases=("--last",),
    ),
    Setting(
        "DASHBOARD_CONNECT_ATTEMPTS",
        5,
        "metadata requests at start before giving up on the broker (exit 2)",
        parse=positive_int,
    ),
    Setting(
        "DASHBOARD_GIVE_UP_SECONDS",
        60,
        "exit 2 after the broker has been unreachable this long",
        parse=positive_int,
    ),
    Setting(
        "DASHBOARD_MAX_FUTURE_SECONDS",
        600,
        "skip (as invalid) a window starting further than this ahead of the host's clock",
        parse=positive_int,
    ),
    # The processor's settings, read here to find its live state and lag.
    cfg.STATE_NAMESPACE,
    cfg.WINDOW_SECONDS,
    cfg.PROCESSOR_GROUP,
    Setting(
        "METRICS_PORT",
        0,
        "port for /metrics, /healthz, /readyz (0 disables)",
        parse=non_negative_int,
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print each window revision as one JSON line"
    )
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="read the whole metrics topic (7 days), not just its tail",
    )


def output_mode(config: Config, args: argparse.Namespace | None) -> str:
    if args is not None and getattr(args, "json", False):
        return "json"
    if config.dashboard_output != "auto":
        return config.dashboard_output
    return "live" if sys.stdout.isatty() else "text"


def live_window_source(config: Config) -> Callable[[], WindowRecord | None]:
    """The processor's window in progress, merged from its Redis state, as a revision-0 record.

    The window length comes from the topology the processor recorded in Redis, so
    the view is right even when this process's WINDOW_SECONDS differs.
    """
    store = StateStore.from_url(
        config.redis_url,
        config.state_namespace,
        config.events_topic,
        **cfg.redis_options(config),
    )

    def in_progress() -> WindowRecord | None:
        found = store.in_progress_window()
        if found is None:
            return None
        totals, window_seconds = found
        return build_record(
            totals, window_seconds, revision=0, final=False, published_at_s=time.time()
        )

    return in_progress


def initial_updates(
    book: WindowBook, backfill: Backfill, last: int | None, every_revision: bool
) -> list[Update]:
    """Fold the backfill into `book`; the updates to show at start, oldest window first.

    Without --from-beginning that is the newest revision of each of the last N
    windows; with it, every distinct revision read (of the last N windows when
    --last is given).
    """
    updates = [u for u in map(book.offer, backfill.records) if u is not None]
    updates.sort(key=lambda u: (u.record.window_start, u.record.revision))
    starts = sorted({u.record.window_start for u in updates})
    if last is not None:
        starts = starts[-last:]
    wanted = set(starts)
    chosen = [u for u in updates if u.record.window_start in wanted]
    if every_revision:
        return chosen
    newest = {u.record.window_start: u for u in chosen}  # later revisions overwrite
    return list(newest.values())


def run(config: Config, args: argparse.Namespace | None = None) -> int:
    mode = output_mode(config, args)
    from_beginning = bool(getattr(args, "from_beginning", False))
    last = config.dashboard_last if config.dashboard_last or from_beginning else 1
    tail = RECORDS_PER_WINDOW * (max(config.dashboard_history, last or 0) + 1)
    reader = MetricsReader(
        config, config.dashboard_group, tail, from_beginning, quiet=mode == "live"
    )
    reader.open(attempts=config.dashboard_connect_attempts)  # retries are logged as usual
    if mode == "live" and config.log_level != "debug":
        # Log lines would tear the full-screen view; problems show in its status line.
        configure("error", config.log_format)
    health = obs.Health()
    stop_http = obs.serve(config.metrics_port, health) if config.metrics_port else None
    stopper = Stopper()
    try:
        if mode == "live":
            return run_live(config, reader, health, stopper, last)
        return run_log(config, reader, health, stopper, mode, last, from_beginning)
    finally:
        reader.close()
        if stop_http:
            stop_http()


def run_log(
    config: Config,
    reader: MetricsReader,
    health: obs.Health,
    stopper: Stopper,
    mode: str,
    last: int | None,
    from_beginning: bool,
) -> int:
    """Text blocks (a pod's log) or JSON lines (scripts), one per window revision shown."""

    def show(update: Update) -> None:
        if mode == "json":
            sys.stdout.write(json_line(update.record) + "\n")
        else:
            sys.stdout.write("\n" + render_block(update.record, update.change, update.added_events))
        sys.stdout.flush()
        obs.WINDOWS_RECEIVED.inc()

    book = WindowBook(keep=max(config.dashboard_history, last or 0, WINDOWS_KEPT_MIN))
    backfill = reader.backfill()
    for update in initial_updates(book, backfill, last, every_revision=from_beginning):
        show(update)
    reader.commit()
    health.ready = True
    if backfill.topic_empty:
        log.info(
            "the metrics topic is empty: waiting for the first window",
            topic=reader.topic,
            window_seconds=config.window_seconds,
        )
    while not stopper.requested:
        health.beat()
        records = reader.poll(0.5)
        for update in filter(None, map(book.offer, records)):
            show(update)
        if records:
            reader.commit()
        if gave_up(config, reader):
            return 2
    return 0


def run_live(
    config: Config, reader: MetricsReader, health: obs.Health, stopper: Stopper, last: int | None
) -> int:
    """The full-screen view: redraw on every change and at least every refresh interval."""
    from rich.console import Console
    from rich.live import Live

    refresh_s = config.dashboard_refresh_ms / 1000
    book = WindowBook(keep=max(config.dashboard_history, last or 0, WINDOWS_KEPT_MIN))
    state = dashboard.DashboardState(
        topic=reader.topic,
        window_seconds=config.window_seconds,
        history=config.dashboard_history,
        book=book,
    )
    admin = AdminClient({**client_config(config), "logger": silent_logger()})
    probes = [
        Probe("consumer-lag", reader.lag, LAG_PROBE_INTERVAL_S),
        Probe(
            "processor-lag",
            lambda: processor_lag(admin, config.events_topic, config.consumer_group),
            LAG_PROBE_INTERVAL_S,
        ),
    ]
    probes.append(Probe("live-window", live_window_source(config), refresh_s))
    console = Console()

    def draw() -> dashboard.RenderableType:
        state.consumer_lag = probes[0].reading
        state.processor_lag = probes[1].reading
        state.live = probes[2].reading
        state.connected = reader.unreachable_for() == 0
        state.invalid_records = reader.invalid.total()
        state.connection_error = "" if state.connected else reader.last_error
        return dashboard.render(state, time.time(), *console.size)

    with Live(draw(), console=console, screen=True, auto_refresh=False) as live:
        _show_backfill(state, book, reader, last)
        health.ready = True
        for probe in probes:
            probe.start()
        next_draw = 0.0
        while not stopper.requested:
            health.beat()
            records = reader.poll(min(refresh_s, LIVE_POLL_MAX_S))
            changed = False
            for update in filter(None, map(book.offer, records)):
                state.apply(update, time.time())
                obs.WINDOWS_RECEIVED.inc()
                changed = True
            if records:
                reader.commit()
            if changed or time.monotonic() >= next_draw:
                live.update(draw(), refresh=True)
                next_draw = time.monotonic() + refresh_s
            if reader.unreachable_for() > config.dashboard_give_up_seconds:
                break
        for probe in probes:
            probe.stop()
    return 2 if gave_up(config, reader) else 0


def _show_backfill(
    state: dashboard.DashboardState, book: WindowBook, reader: MetricsReader, last: int | None
) -> None:
    """The topic's tail into the view at once; only the latest window is announced."""
    backfill = reader.backfill()
    now = time.time()
    for update in initial_updates(book, backfill, last, every_revision=False):
        state.apply(update, now, announce=False)
    latest = book.latest()
    if latest is not None:
        state.apply(state.changes[latest.window_start], now)
    state.backfill_done, state.topic_empty = True, backfill.topic_empty
    reader.commit()


def gave_up(config: Config, reader: MetricsReader) -> bool:
    """The broker has been unreachable for longer than the dashboard waits; says so once."""
    if reader.unreachable_for() <= config.dashboard_give_up_seconds:
        return False
    log.error(
        "Kafka unreachable, giving up",
        seconds=config.dashboard_give_up_seconds,
        error=reader.last_error,
    )
    return True
