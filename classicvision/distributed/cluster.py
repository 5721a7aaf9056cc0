"""Connect to a Dask scheduler from a ``--scheduler`` string, and run one stage's tasks with a progress bar.

``local`` or ``local:N`` starts a :class:`distributed.LocalCluster` of ``N`` worker processes
(default: the CPU count), one thread each (and one kernel thread each: :func:`worker_environment`),
and closes it when the ``with`` block ends, however it ends. Its workers run
:func:`classicvision.experiments.workers.guard_worker` when they start (a worker plugin, so a
worker the nanny restarts after a crash runs it too): they end when the process that started the
cluster ends, even by SIGKILL. ``tcp://HOST:PORT`` (or ``tls://``,
``ucx://``) connects to a running scheduler and leaves its cluster as it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys

from ..experiments.workers import guard_worker

__all__ = ["connect", "dashboard", "parse_scheduler", "run_stage", "worker_environment"]

logger = logging.getLogger(__name__)

_ADDRESS = re.compile(r"^(tcp|tls|ucx|inproc)://\S+$")


def parse_scheduler(scheduler: str) -> tuple[str, int | None]:
    """``("local", N or None)`` or ``("address", None)`` from a ``--scheduler`` value.

    Raises
    ------
    ValueError
        One line naming the value when it is neither ``local[:N]`` (N >= 1) nor an address.

    Examples
    --------
    >>> parse_scheduler("local:2"), parse_scheduler("tcp://10.0.0.1:8786")
    (('local', 2), ('tcp://10.0.0.1:8786', None))
    """
    if not isinstance(scheduler, str):
        raise TypeError(f"scheduler must be a str, got {type(scheduler).__name__}")
    if scheduler == "local":
        return "local", None
    match = re.fullmatch(r"local:(\d+)", scheduler)
    if match:
        n = int(match.group(1))
        if n < 1:
            raise ValueError(f"scheduler local:N needs N >= 1 workers, got {scheduler!r}")
        return "local", n
    if _ADDRESS.match(scheduler):
        return scheduler, None
    raise ValueError(f"scheduler must be local, local:N or tcp://HOST:PORT, got {scheduler!r}")


class _GuardPlugin:
    """Worker plugin: the worker process ends when the process that started the local cluster ends."""

    name = "classicvision-guard"

    def __init__(self, parent_pid: int):
        self.parent_pid = parent_pid

    def setup(self, worker):
        guard_worker(self.parent_pid)


@contextlib.contextmanager
def connect(scheduler: str = "local", **cluster_options):
    """Context manager giving a :class:`distributed.Client` for ``scheduler`` (see the module docstring).

    ``cluster_options`` go to :class:`distributed.LocalCluster` (``local`` only). The client and,
    for ``local``, the cluster are closed on exit.
    """
    address, n_workers = parse_scheduler(scheduler)
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ModuleNotFoundError("--scheduler needs dask: pip install 'classicvision[dask]'") from None
    if address != "local":
        with Client(address) as client:
            yield client
        return
    options = {"n_workers": n_workers or os.cpu_count() or 1, "threads_per_worker": 1, "processes": True,
               "dashboard_address": ":0", **cluster_options}
    options["env"] = {**worker_environment(options["threads_per_worker"]), **(options.get("env") or {})}
    with LocalCluster(**options) as cluster, Client(cluster) as client:
        from distributed.diagnostics.plugin import WorkerPlugin

        plugin = type("GuardPlugin", (_GuardPlugin, WorkerPlugin), {})(os.getpid())
        client.register_plugin(plugin, name=_GuardPlugin.name)
        yield client


def worker_environment(threads_per_worker: int, environ=None) -> dict:
    """The variables a local cluster's workers start with: ``CLASSICVISION_NUM_THREADS`` set to
    ``threads_per_worker``, unless ``environ`` (default: this process's environment) sets it,
    in which case the workers inherit that value.

    The kernels' thread pool sizes itself to the CPU count by default (``CLASSICVISION_NUM_THREADS``
    unset), so ``N`` worker processes on ``N`` cores would run ``N`` pool threads each on the same
    cores: the oversubscription Dask avoids for BLAS by setting ``OMP_NUM_THREADS=1`` in its workers.

    Returns
    -------
    dict of str to str

    Examples
    --------
    >>> worker_environment(1, environ={}), worker_environment(1, environ={"CLASSICVISION_NUM_THREADS": "4"})
    ({'CLASSICVISION_NUM_THREADS': '1'}, {})
    """
    environ = os.environ if environ is None else environ
    if "CLASSICVISION_NUM_THREADS" in environ:
        return {}
    return {"CLASSICVISION_NUM_THREADS": str(int(threads_per_worker))}


def dashboard(client) -> str:
    """The dashboard address of ``client``'s scheduler, or a line saying why there is none."""
    try:
        link = client.dashboard_link
    except Exception:  # noqa: BLE001 - no dashboard is not an error
        link = None
    if not link:
        return "not available (install bokeh for the dashboard)"
    return link


def run_stage(client, func, calls, *, stage: str, progress: bool = True, retries: int = 2) -> list:
    """Submit ``func(*args)`` for every ``(key, args)`` of ``calls``; return the results in order.

    Tasks are keyed ``<stage>-<key>`` (one task per partition and stage). ``retries`` re-runs a
    task that raised; a task lost with a dead worker is re-run by the scheduler itself (up to
    ``distributed.scheduler.allowed-failures`` times). A tqdm bar on stderr counts finished tasks.
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    calls = list(calls)
    futures = [client.submit(func, *args, key=f"{stage}-{key}", pure=False, retries=retries)
               for key, args in calls]
    index = {f.key: i for i, f in enumerate(futures)}
    results = [None] * len(futures)
    try:
        with tqdm(total=len(futures), desc=stage, disable=not progress, file=sys.stderr) as bar:
            for future in as_completed(futures):
                results[index[future.key]] = future.result()
                bar.update(1)
    finally:
        for future in futures:
            future.release()
    return results
