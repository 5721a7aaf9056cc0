"""What a first run compiles: numba compile time per warm-up group and per compiled function.

Each group of :data:`classicvision._warm.GROUPS` is compiled in a fresh Python process with an
empty ``NUMBA_CACHE_DIR`` (so a group's time includes numba's own start-up in that process, about
0.4 s, as a first run pays it), with a listener on numba's ``numba:compile`` events: the wall
time of the group, and for every function compiled (ours and numba's own implementations, such
as ``np.empty``'s) its exclusive time, the time of its nested compilations taken out. Then the
groups of each job of :data:`classicvision._warm.JOBS` are summed the way a first run splits
them (the child's groups, the caller's). Writes ``results/compile.md`` and ``compile.json``.

    python benchmarks/bench_compile.py [--top 12]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from _timing import add_out_argument, machine_info, machine_line, write_results

_PROBE = r"""
import collections, json, sys, time
from numba.core import event

class Recorder(event.Listener):
    def __init__(self):
        self.stack, self.exclusive = [], collections.Counter()
    def on_start(self, ev):
        function = ev.data["dispatcher"].py_func
        self.stack.append([f"{function.__module__}.{function.__qualname__}", time.perf_counter(), 0.0])
    def on_end(self, ev):
        name, start, nested = self.stack.pop()
        seconds = time.perf_counter() - start
        self.exclusive[name] += seconds - nested
        if self.stack:
            self.stack[-1][2] += seconds

recorder = Recorder()
event.register("numba:compile", recorder)
from classicvision import _warm
start = time.perf_counter()
_warm.warm(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - start, "functions": dict(recorder.exclusive)}))
"""


def _group(name: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="numba-compile-") as cache:
        done = subprocess.run([sys.executable, "-c", _PROBE, name], capture_output=True, text=True,
                              env={**os.environ, "NUMBA_CACHE_DIR": cache}, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"group {name} failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    from classicvision._warm import GROUPS, JOBS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=12, help="functions listed per group")
    add_out_argument(parser)
    args = parser.parse_args()
    groups = {}
    for name in GROUPS:
        groups[name] = _group(name)
        print(f"{name}: {groups[name]['seconds']:.2f} s", flush=True)
    info = machine_info()
    lines = ["# What a first run compiles", "",
             "Each warm-up group compiled alone in a fresh process with an empty `NUMBA_CACHE_DIR` "
             "(`python benchmarks/bench_compile.py`); seconds of wall time, numba's start-up in the process "
             "included. " + machine_line(info), "",
             "| job | child's groups | s | caller's groups | s |", "| --- | --- | ---: | --- | ---: |"]
    for job, (child, here, _) in JOBS.items():
        lines.append(f"| {job} | {', '.join(child)} | {sum(groups[g]['seconds'] for g in child):.2f} | "
                     f"{', '.join(here)} | {sum(groups[g]['seconds'] for g in here):.2f} |")
    lines += ["", "Per group, the functions compiled (exclusive seconds: nested compilations taken out; "
              "`numba.*` are numba's own implementations a kernel called):", "",
              "| group | s | largest |", "| --- | ---: | --- |"]
    for name, found in groups.items():
        top = sorted(found["functions"].items(), key=lambda item: -item[1])[:args.top]
        listed = ", ".join(f"`{f.replace('classicvision._kernels.', '')}` {s:.2f}" for f, s in top)
        lines.append(f"| {name} | {found['seconds']:.2f} | {listed} |")
    md, js = write_results(args.out, "compile", "\n".join(lines),
                           {"machine": info, "groups": groups,
                            "jobs": {job: {"child": list(c), "caller": list(h)} for job, (c, h, _) in JOBS.items()}})
    print(f"wrote {md} and {js}")


if __name__ == "__main__":
    main()
