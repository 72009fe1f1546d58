"""`clickstream chaos`: kill processors mid-window and prove nothing was lost or double-counted.

Local mode (default), in order:
1. generate a dataset over CHAOS_WINDOWS short windows, with out-of-order,
   late, too-late and malformed records, poison records with CHAOS_POISON
   (load.poison), and its ground truth;
2. with CHAOS_BROKER=own|restart start a private KRaft broker that the whole
   run uses; create the run's own topics (chaos-<id>-events/-metrics/-dlq), and
   with CHAOS_REDIS=own|restart|outage start a private redis-server with AOF;
3. start CHAOS_REPLICAS `clickstream process` replicas with short windows, the
   run's topics, state namespace and consumer group, each on its own metrics port;
4. replay the dataset at CHAOS_SPEED with event times shifted to now (whole
   windows, so the ground truth only moves), and meanwhile SIGKILL a random
   replica every CHAOS_KILL_EVERY seconds (jittered) and restart it; take the
   private Redis and broker down as asked (load.chaos.faults);
5. wait until every expected window has a final record (CHAOS_FINAL_TIMEOUT);
6. compare each final window with the ground truth and the DLQ with the planted
   bad records (load.verdict), count honest events lost and replica exits that
   no kill caused, print the verdict table and exit 1 on any failure.

Recovery time after a kill is measured from the replicas' own /metrics: the
partitions whose clickstream_events_applied_total moved in the victim during
the last 1.5 s before the kill are its partitions; the kill has recovered when
each of them moves again in another process (a survivor or the restarted
replica). It needs no access to the processor's Redis keys and includes
everything a user would wait for: session timeout, rebalance, fence read and
the first applied batch.

Kubernetes mode (CHAOS_MODE=kubernetes): the same dataset, replay and verdict
against the release's topics, with `kubectl delete pod --grace-period=0 --force`
on a random pod matching CHAOS_POD_SELECTOR instead of local SIGKILLs; the
Deployment restarts pods itself. The windows and DLQ records that belong to the
replay are told apart from other traffic by time range and source offsets.

Modules: settings (flags, planted disorder), scenario (the steps above, once,
against a FaultTarget), local and kubernetes (the two targets and their set-up),
faults (the private Redis's and broker's outages), report (the verdict table).
"""

from __future__ import annotations

import random
import shlex
import shutil
import subprocess

from load.chaos.kubernetes import run_kubernetes
from load.chaos.local import run_local
from load.chaos.report import ChaosReport, print_verdict, verdict_rows
from load.chaos.settings import PLANTED, SETTINGS, plan_for
from services.common.config import Config
from services.common.logging import get_logger

__all__ = [
    "PLANTED",
    "SETTINGS",
    "ChaosReport",
    "plan_for",
    "print_verdict",
    "run",
    "run_kubernetes",
    "run_local",
    "verdict_rows",
]

log = get_logger("chaos")

# Seeds are drawn below 2**30 so they stay short enough to retype from the verdict title.
SEED_BOUND = 1 << 30
EXIT_CANNOT_RUN = 2  # kubectl missing or failing: no verdict at all, unlike a FAIL (1)


def run(config: Config) -> int:
    seed = config.chaos_seed if config.chaos_seed is not None else random.randrange(SEED_BOUND)
    if config.chaos_mode == "kubernetes":
        kubectl_binary = shlex.split(config.chaos_kubectl)[0]
        if shutil.which(kubectl_binary) is None:
            log.error("kubernetes mode needs kubectl on the PATH", kubectl=kubectl_binary)
            return EXIT_CANNOT_RUN
        try:
            report = run_kubernetes(config, seed)
        except subprocess.CalledProcessError as error:
            log.error(
                "kubectl failed",
                command=" ".join(error.cmd),
                stderr=(error.stderr or "").strip()[:500],
            )
            return EXIT_CANNOT_RUN
    else:
        report = run_local(config, seed)
    print_verdict(report, seed)
    return 0 if report.ok else 1
