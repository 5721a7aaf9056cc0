"""This checkout's DoG + RootSIFT pipeline against another git revision's, one process each, taking turns.

Timing two builds of the library on a shared 2-vCPU host is harder than timing one against
OpenCV. Loaded in one process, the older builds' OpenMP threads spin after each call and slow
whatever runs next; and a process keeps, for its whole life, a state that sets its speed by up
to 20% (where its arrays landed, which vCPU its main thread took). So each build runs in a
process of its own, the processes take turns image by image (the order reversed every turn, a
short pause before each), and a *round* is a fresh pair of processes: the result is the median
over rounds of each round's median ratio, with the quartiles over rounds.

Each turn times, on one warped bundled image (as in the invariance suite), the shortest of three
calls of: the whole ``detect_and_describe`` (DoG, RootSIFT), the Gaussian pyramid, and the DoG
extrema search with refinement on a pyramid built beforehand; and, from the whole call's own
``seconds`` split, its orientation assignment and its description (the shortest of the three
calls' parts). The other revision is exported
with ``git archive`` into a temporary folder; revisions before the package was split into
subpackages (``classicvision.invariant``, ``classicvision.scale_space``) are called through
their own names.

Run: ``python benchmarks/bench_builds.py --against 5b34958 [--rounds 8] [--turns 18]
[--out benchmarks/results]``; writes ``builds.md`` and ``builds.json``. Quick check:
``--rounds 1 --turns 2 --out /tmp/bench``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _timing import add_out_argument, machine_info, machine_line, write_results

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("pipeline", "pyramid", "extrema", "orient", "describe")
WARPS = ((0, 1.0), (30, 0.75), (90, 1.5))

# The child: imports the build found first on sys.path, loads the images, warms up, then answers
# each line "i" with the shortest of three calls of each stage on image i.
_CHILD = r'''
import sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
try:
    from classicvision.features.extract import detect_and_describe
    from classicvision.features.scale_space import dog_extrema, gaussian_pyramid
    pipeline = lambda image, seconds: detect_and_describe(image, descriptor="rootsift", seconds=seconds)
except ImportError:                                   # before the subpackages
    from classicvision.invariant import detect_and_describe_invariant
    from classicvision.scale_space import dog_extrema, gaussian_pyramid
    pipeline = lambda image, seconds: detect_and_describe_invariant(image, rootsift=True, seconds=seconds)
saved = np.load(sys.argv[2])
images = [saved[f"arr_{i}"] for i in range(len(saved.files))]
pyramids = [gaussian_pyramid(image) for image in images]
split = {}
stages = {"pipeline": lambda i: pipeline(images[i], split), "pyramid": lambda i: gaussian_pyramid(images[i]),
          "extrema": lambda i: dog_extrema(pyramids[i])}
for i in range(len(images)):
    for stage in stages.values():
        stage(i)
        stage(i)
print("ready", flush=True)
for line in sys.stdin:
    i = int(line)
    best, parts = [], {"orient": [], "describe": []}
    for name, stage in stages.items():
        times = []
        for _ in range(3):
            split.clear()
            start = time.perf_counter()
            stage(i)
            times.append(time.perf_counter() - start)
            if name == "pipeline":
                for key in parts:
                    parts[key].append(split[key])
        best.append(min(times))
    best += [min(values) for values in parts.values()]
    print(" ".join(map(repr, best)), flush=True)
'''


def export(revision: str, folder: Path) -> Path:
    """``classicvision/`` of ``revision`` (``git archive``) under ``folder``; returns ``folder``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "classicvision"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def warped_images() -> list[np.ndarray]:
    """The bundled images of the invariance suite, warped as in ``bench_invariance_stages.py``."""
    from bench_invariance import load_images, warp

    return [warp(image, degrees, scale)[0] for image in load_images().values() for degrees, scale in WARPS]


def run_round(sources: dict[str, Path], images_file: Path, n_images: int, turns: int,
              flip: bool) -> dict[str, np.ndarray]:
    """One round: a fresh process per build, ``turns`` turns each; ``(turns, stages)`` seconds."""
    names = list(sources)[::-1] if flip else list(sources)
    processes = {name: subprocess.Popen([sys.executable, "-c", _CHILD, str(sources[name]), str(images_file)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for name in names}
    try:
        for name, process in processes.items():
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"the {name} build did not start (see its error above)")
        times = {name: [] for name in names}
        for turn in range(turns):
            for name in (names if turn % 2 == 0 else names[::-1]):
                time.sleep(0.02)
                process = processes[name]
                process.stdin.write(f"{turn % n_images}\n")
                process.stdin.flush()
                times[name].append([float(value) for value in process.stdout.readline().split()])
        return {name: np.array(values) for name, values in times.items()}
    finally:
        for process in processes.values():
            if process.stdin:
                process.stdin.close()
            process.wait(timeout=60)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="5b34958", help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=8, help="fresh process pairs")
    parser.add_argument("--turns", type=int, default=18, help="turns of each build per round")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    rounds, turns = max(1, args.rounds), max(1, args.turns)
    ratios = []                                        # (rounds, stages): this / other, per round
    medians = {"this": [], "other": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = warped_images()
        np.savez(tmp / "images.npz", *images)
        (tmp / "other").mkdir()
        sources = {"this": ROOT, "other": export(args.against, tmp / "other")}
        for r in range(rounds):
            times = run_round(sources, tmp / "images.npz", len(images), turns, flip=r % 2 == 1)
            ratios.append(np.median(times["this"] / times["other"], axis=0))
            for name in medians:
                medians[name].append(np.median(times[name], axis=0))
            print(f"round {r + 1}/{rounds}: this / {args.against}: "
                  + ", ".join(f"{stage} {value:.3f}" for stage, value in zip(STAGES, ratios[-1])), flush=True)
    ratios = np.array(ratios)
    summary = {stage: {"median": float(np.median(ratios[:, k])), "q25": float(np.percentile(ratios[:, k], 25)),
                       "q75": float(np.percentile(ratios[:, k], 75)),
                       "this_ms": float(np.median([m[k] for m in medians["this"]]) * 1e3),
                       "other_ms": float(np.median([m[k] for m in medians["other"]]) * 1e3)}
               for k, stage in enumerate(STAGES)}
    info = machine_info()
    lines = [f"# This checkout against {args.against}: DoG + RootSIFT per image", "",
             f"Command: `python benchmarks/bench_builds.py --against {args.against} --rounds {rounds} "
             f"--turns {turns}`. One process per build, taking turns image by image; {rounds} rounds of "
             "fresh processes; per turn the shortest of three calls (module docstring).",
             machine_line(info), "",
             f"| stage | this (ms) | {args.against} (ms) | this / {args.against}: median over rounds | quartiles |",
             "|---|---|---|---|---|"]
    for stage, s in summary.items():
        lines.append(f"| {stage} | {s['this_ms']:.2f} | {s['other_ms']:.2f} | {s['median']:.3f} "
                     f"| {s['q25']:.3f}-{s['q75']:.3f} |")
    text = "\n".join(lines) + "\n"
    write_results(args.out, "builds", text, {"against": args.against, "rounds": rounds, "turns": turns,
                                             "summary": summary, "round_ratios": ratios.tolist(),
                                             "machine": info})
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
