"""What a chaos run observed, and the verdict table it prints."""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass, field

from load.harness import Kill
from load.replay import ReplayResult
from load.verdict import DlqVerdict, WindowsVerdict

MISMATCHES_SHOWN = 30  # the rest are counted: a broken run can mismatch every field
# Not a terminal (CI logs, a pipe): wide enough that no row of the table wraps.
PIPE_WIDTH = 110


@dataclass
class ChaosReport:
    mode: str
    replicas: int
    replay: ReplayResult | None = None
    kills: list[Kill] = field(default_factory=list)
    restarts: int = 0
    # Replica processes that exited without a kill of the run (a crash on Redis loss,
    # a broker timeout, a poison record): restarted, counted, and a FAIL. None: not
    # observable (kubernetes mode).
    unexpected_exits: int | None = 0
    redis_restarts: str = "skipped (shared Redis)"
    broker_restarts: str = "skipped (shared broker)"
    fault_failures: list[str] = field(default_factory=list)  # a fault that could not be done
    honest_events_lost: int | None = None
    windows: WindowsVerdict | None = None
    dlq: DlqVerdict | None = None
    recoveries: list[float] = field(default_factory=list)
    unrecovered: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def mismatching_fields(self) -> int:
        return len(self.windows.mismatches) if self.windows else 0

    @property
    def ok(self) -> bool:
        return bool(
            self.windows
            and self.windows.ok
            and self.dlq
            and self.dlq.ok
            and self.replay
            and self.replay.ok
            and not self.unexpected_exits
            and self.honest_events_lost == 0
            and not self.fault_failures
        )


def verdict_rows(report: ChaosReport) -> list[tuple[str, str]]:
    replay_result = report.replay
    rows = [("mode", f"{report.mode}, {report.replicas} processor replicas")]
    if replay_result is not None:
        rows.append(
            (
                "events replayed",
                f"{replay_result.events:,} in {replay_result.seconds:.1f} s"
                f" ({replay_result.delivery_errors} delivery errors)",
            )
        )
    rows += [
        (
            "kills (SIGKILL)" if report.mode == "local" else "pods deleted (--force)",
            str(len(report.kills)),
        ),
        ("restarts", str(report.restarts)),
        (
            "replica exits not caused by chaos",
            "not observed (kubernetes mode)"
            if report.unexpected_exits is None
            else str(report.unexpected_exits),
        ),
        ("redis restarts", report.redis_restarts),
        ("broker restarts", report.broker_restarts),
    ]
    rows += [("fault not done", failure) for failure in report.fault_failures]
    if report.honest_events_lost is not None:
        rows.append(("honest events lost", f"{report.honest_events_lost:,}"))
    rows += _window_rows(report.windows) + _dlq_rows(report.dlq) + _recovery_rows(report)
    rows.append(("duration", f"{report.seconds:.0f} s"))
    rows.append(("verdict", "PASS" if report.ok else "FAIL"))
    return rows


def _window_rows(windows: WindowsVerdict | None) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if windows is None:
        return rows
    extra = []
    if windows.missing:
        extra.append(f"{len(windows.missing)} without a final record")
    if windows.unexpected:
        extra.append(f"{len(windows.unexpected)} unexpected")
    rows.append(
        (
            "windows checked",
            f"{windows.checked} / {windows.expected}"
            + (f" ({', '.join(extra)})" if extra else "")
            + f", {windows.revisions} records read",
        )
    )
    rows.append(("mismatching fields", str(len(windows.mismatches))))
    return rows


def _dlq_rows(dlq: DlqVerdict | None) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if dlq is None:
        return rows
    rejected = sum(v for k, v in dlq.found.items() if k != "too_late")
    too_late = dlq.found.get("too_late", 0)
    expected_total = sum(dlq.expected.values())
    rows.append(
        (
            "events in DLQ",
            f"{dlq.distinct} = {rejected} rejected + {too_late} too"
            f" late (expected {expected_total})",
        )
    )
    for reason in sorted(set(dlq.expected) | set(dlq.found)):
        found, expected = dlq.found.get(reason, 0), dlq.expected.get(reason, 0)
        rows.append((f"  DLQ {reason}", f"{found} (expected {expected})"))
    rows.append(("DLQ repeats of a source record", str(dlq.records - dlq.distinct)))
    rows.append(("DLQ mismatches", str(len(dlq.mismatches))))
    return rows


def _recovery_rows(report: ChaosReport) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if report.recoveries:
        idle = sum(1 for kill in report.kills if not kill.partitions)
        rows.append(
            (
                "longest kill-to-processing",
                f"{max(report.recoveries):.1f} s (median "
                f"{statistics.median(report.recoveries):.1f} s over "
                f"{len(report.recoveries)} kills"
                + (f"; {report.unrecovered} not observed" if report.unrecovered else "")
                + (f"; {idle} victims held no partitions yet" if idle else "")
                + ")",
            )
        )
    elif report.mode == "local":
        rows.append(("longest kill-to-processing", "not measured (no /metrics progress seen)"))
    return rows


def print_verdict(report: ChaosReport, seed: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"chaos verdict (seed {seed})", show_header=True)
    table.add_column("check")
    table.add_column("result")
    for name, value in verdict_rows(report):
        style = None
        if name == "verdict":
            style = "bold green" if report.ok else "bold red"
        table.add_row(name, value, style=style)
    console = Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)
    console.print(table)
    mismatches = []
    if report.windows is not None:
        mismatches += report.windows.mismatches
        mismatches += [f"{window}: no final record" for window in report.windows.missing]
        mismatches += [f"{window}: not in the ground truth" for window in report.windows.unexpected]
    if report.dlq is not None:
        mismatches += report.dlq.mismatches
    for mismatch in mismatches[:MISMATCHES_SHOWN]:
        console.print(f"  mismatch: {mismatch}")
    if len(mismatches) > MISMATCHES_SHOWN:
        console.print(f"  ... and {len(mismatches) - MISMATCHES_SHOWN} more")
    for note in report.notes:
        console.print(f"  note: {note}")
