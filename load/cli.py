"""`clickstream load generate|replay|record|run`: datasets, ground truth and fast replays.

- generate: write a dataset (gzip JSON lines) and its ground truth next to it;
- replay:   send a dataset to the events topic (max speed, --rate N or --speed K,
            optionally --shift-to-now), with a progress bar and a summary;
- record:   capture the events topic, or a time range of it, into a dataset;
- run:      generate the dataset if it is missing, then replay it (`make load`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from load import dataset, generate, truth
from load.record import record_topic
from load.replay import Pacing, ReplayResult, first_arrival, replay, shift_for_now
from services.common import config as cfg
from services.common.config import (
    Config,
    Setting,
    parse_bool,
    positive_float,
    positive_int,
)
from services.common.kafka import make_admin, partition_count, wait_for_broker
from services.common.logging import get_logger

log = get_logger("load")

WANTS_ARGS = True
ACTIONS = ("run", "generate", "replay", "record")
PROGRESS_LOG_EVERY_S = 5.0


def parse_share(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise ValueError("must be a share between 0 and 1")
    return value


def parse_rate(text: str) -> float | None:
    """Events per second; 'max' or 0 for no pacing."""
    if text.strip().lower() in ("max", "0", ""):
        return None
    return positive_float(text)


def parse_time(text: str) -> float | None:
    """Epoch seconds from an ISO 8601 timestamp or a number; empty for none."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2024-10-26T10:00:00Z") from None
        return moment.timestamp()


# WINDOW_SECONDS, GRACE_SECONDS and ALLOWED_LATENESS_SECONDS share the
# processor's names: one environment describes both sides of a test.
DATASET_SETTINGS = (
    Setting(
        "LOAD_DATASET",
        "data/load-default.jsonl.gz",
        "dataset file (gzip JSON lines)",
        aliases=("--dataset",),
    ),
)
GENERATE_SETTINGS = (
    Setting(
        "LOAD_EVENTS",
        1_000_000,
        "records to generate (malformed ones included)",
        parse=positive_int,
        aliases=("--events",),
    ),
    Setting(
        "LOAD_WINDOWS",
        12,
        "windows the event times span",
        parse=positive_int,
        aliases=("--windows",),
    ),
    # The processor's windowing: out-of-order events stay within half the grace, late
    # ones within half the allowed lateness, too-late ones far beyond it.
    cfg.WINDOW_SECONDS,
    cfg.GRACE_SECONDS,
    cfg.ALLOWED_LATENESS_SECONDS,
    Setting(
        "LOAD_USERS", 10_000, "simulated user population", parse=positive_int, aliases=("--users",)
    ),
    Setting("LOAD_SEED", 42, "random seed", parse=int, aliases=("--seed",)),
    Setting(
        "LOAD_START",
        generate.DEFAULT_START,
        "event time of the first window (ISO 8601)",
        parse=parse_time,
        aliases=("--start",),
    ),
    Setting(
        "LOAD_OUT_OF_ORDER",
        0.05,
        "share of out-of-order events (within grace)",
        parse=parse_share,
        aliases=("--out-of-order",),
    ),
    Setting(
        "LOAD_LATE",
        0.01,
        "share of late events (beyond grace, within lateness)",
        parse=parse_share,
        aliases=("--late",),
    ),
    Setting(
        "LOAD_TOO_LATE",
        0.001,
        "share of too-late events (expected in the DLQ)",
        parse=parse_share,
        aliases=("--too-late",),
    ),
    Setting(
        "LOAD_MALFORMED",
        0.002,
        "share of malformed records (expected in the DLQ)",
        parse=parse_share,
        aliases=("--malformed",),
    ),
)
REPLAY_SETTINGS = (
    Setting(
        "LOAD_RATE",
        None,
        "replay at N events/s ('max': as fast as possible)",
        parse=parse_rate,
        aliases=("--rate",),
    ),
    Setting(
        "LOAD_SPEED",
        None,
        "replay at K times the original pacing",
        parse=positive_float,
        aliases=("--speed",),
    ),
    Setting(
        "LOAD_SHIFT_TO_NOW",
        False,
        "move event times by whole windows so the first event is in the current window",
        parse=parse_bool,
    ),
)
RECORD_SETTINGS = (
    Setting(
        "LOAD_FROM",
        None,
        "record from this time (ISO 8601 or epoch s; default: earliest)",
        parse=parse_time,
        aliases=("--from",),
    ),
    Setting(
        "LOAD_TO",
        None,
        "record up to this time (default: the end at start)",
        parse=parse_time,
        aliases=("--to",),
    ),
    Setting(
        "LOAD_RECORD_TIMEOUT",
        300.0,
        "give up recording after this many seconds",
        parse=positive_float,
    ),
)
SETTINGS = (*DATASET_SETTINGS, *GENERATE_SETTINGS, *REPLAY_SETTINGS, *RECORD_SETTINGS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        nargs="?",
        default="run",
        choices=ACTIONS,
        help="run (default): generate if missing, then replay",
    )
    parser.add_argument(
        "--shift-to-now",
        dest="load_shift_to_now",
        action="store_const",
        const="true",
        default=None,
        help="shorthand for --load-shift-to-now true",
    )


def plan_from(config: Config) -> generate.Plan:
    return generate.Plan(
        events=config.load_events,
        windows=config.load_windows,
        window_seconds=config.window_seconds,
        grace_seconds=config.grace_seconds,
        allowed_lateness_seconds=config.allowed_lateness_seconds,
        users=config.load_users,
        seed=config.load_seed,
        start=config.load_start,
        out_of_order=config.load_out_of_order,
        late=config.load_late,
        too_late=config.load_too_late,
        malformed=config.load_malformed,
    )


def run(config: Config, args: argparse.Namespace) -> int:
    action = args.action
    path = Path(config.load_dataset)
    if action in ("generate", "run") and (action == "generate" or not path.exists()):
        started = time.monotonic()
        expected = generate.write_dataset(plan_from(config), path)
        log.info(
            "dataset written",
            path=str(path),
            truth=str(dataset.truth_path(path)),
            records=expected["records"],
            windows=len(expected["windows"]),
            counted_events=expected["counted_events"],
            planted=expected["planted"],
            seconds=round(time.monotonic() - started, 1),
        )
        if action == "generate":
            return 0
    if action == "record":
        return _record(config, path)
    return _replay(config, path)


def _record(config: Config, path: Path) -> int:
    stale = dataset.truth_path(path)
    if stale.exists():
        stale.unlink()  # a recorded file has no planted kinds, so no ground truth
        log.info("removed the ground truth of the file being replaced", path=str(stale))
    result = record_topic(
        config,
        config.events_topic,
        path,
        config.load_from,
        config.load_to,
        config.load_record_timeout,
    )
    log.info(
        "topic recorded",
        topic=config.events_topic,
        path=str(path),
        records=result.records,
        seconds=round(result.seconds, 1),
    )
    return 0


def _replay(config: Config, path: Path) -> int:
    if not path.exists():
        log.error("no such dataset; create one with: clickstream load generate", path=str(path))
        return 2
    partition_count(wait_for_broker(make_admin(config)), config.events_topic)
    pacing = Pacing(rate=config.load_rate, speed=config.load_speed)
    truth_file = dataset.truth_path(path)
    expected = truth.read(truth_file) if truth_file.exists() else None
    shift_seconds = 0
    if config.load_shift_to_now:
        window_seconds = expected["window_seconds"] if expected else config.window_seconds
        shift_seconds = shift_for_now(first_arrival(path), window_seconds)
        if expected is not None:
            shifted = truth.shift(expected, shift_seconds)
            shifted_file = truth_file.with_name(truth_file.name.replace(".truth.", ".shifted."))
            truth.write(shifted_file, shifted)
            log.info(
                "shifted ground truth written", path=str(shifted_file), shift_seconds=shift_seconds
            )
    total = expected["records"] if expected else None
    log.info(
        "replaying",
        path=str(path),
        topic=config.events_topic,
        pacing=pacing.describe(),
        shift_seconds=shift_seconds,
        records=total,
    )
    with _Progress(total) as progress:
        result = replay(config, path, config.events_topic, pacing, shift_seconds, progress=progress)
    _print_summary(result)
    return 0 if result.ok else 1


class _Progress:
    """A rich progress bar on a terminal, a log line every few seconds otherwise."""

    def __init__(self, total: int | None):
        self.total = total
        self.bar = None
        self.started = time.monotonic()
        self.next_log = self.started + PROGRESS_LOG_EVERY_S

    def __enter__(self) -> Callable[[int, int], None]:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("replay"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>10,.0f} events/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self.bar.start()
            self.task = self.bar.add_task("replay", total=self.total, rate=0.0)
        return self.update

    def update(self, events: int, _bytes: int) -> None:
        now = time.monotonic()
        rate = events / max(now - self.started, 1e-9)
        if self.bar is not None:
            self.bar.update(self.task, completed=events, rate=rate)
        elif now >= self.next_log:
            self.next_log = now + PROGRESS_LOG_EVERY_S
            fields = {"events": events, "events_per_s": round(rate)}
            if self.total:
                fields["percent"] = round(100 * events / self.total, 1)
                fields["eta_s"] = round((self.total - events) / rate, 1) if rate else None
            log.info("replay progress", **fields)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _print_summary(result: ReplayResult) -> None:
    summary = result.summary()
    log.info(
        f"Replayed {result.events:,} events ({result.bytes / 1e6:,.1f} MB) in "
        f"{result.seconds:.2f}s: {result.events_per_s:,.0f} events/s, "
        f"{result.delivery_errors} delivery errors",
        **summary,
        first_error=result.first_error or None,
    )
