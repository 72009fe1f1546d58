"""Ending the child processes a tool or test started: one way, for every kind."""

from __future__ import annotations

import signal
import subprocess

# A SIGKILLed process is reaped at once; this only bounds the wait.
KILL_WAIT_S = 10.0


def kill(process: subprocess.Popen | None) -> None:
    """SIGKILL a running process and reap it: no shutdown hook runs."""
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=KILL_WAIT_S)


def stop(process: subprocess.Popen | None, timeout_s: float) -> bool:
    """SIGTERM a running process; SIGKILL it if it has not exited within `timeout_s`.

    Returns True when it had to be killed.
    """
    if process is None or process.poll() is not None:
        return False
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill(process)
        return True
    return False
