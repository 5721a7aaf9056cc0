"""Sobel and derivative-of-Gaussian gradients against OpenCV, with enough calls for a stable median.

Usage::

    python benchmarks/bench_gradients.py [--sizes 512,1024] [--calls 60] [--pause 0.05] [--out benchmarks/results]

Quick check: ``--calls 3 --out /tmp/bench``. Writes ``gradients.md`` and ``gradients.json``.

A gradient call on a 1024 x 1024 image takes about a millisecond, the size of what disturbs it
on a shared virtual machine: the first touch of the two fresh 4 MB outputs (page faults, which
OpenCV's outputs pay too), and a thread pool's worker that has to be woken. A median of 9 calls
(``bench_local_features.py``) therefore moves by 2x between runs. Here each row is a round robin
of ``--calls`` calls of every method (:func:`_timing.interleaved` with one call per round), in two
protocols: back to back, and with a ``--pause`` of sleep before every call (the pools' workers are
then asleep, as in a program that computes one gradient now and then). Methods: ours with the
default threads and with one (``CLASSICVISION_NUM_THREADS=1``), and OpenCV (its default threads):
``cv2.Sobel`` for Sobel; ``cv2.GaussianBlur`` then ``cv2.Sobel`` with ``ksize=1`` (central
differences) for the derivative of Gaussian. The outputs are checked against OpenCV's first.
"""

from __future__ import annotations

import argparse
import os

import cv2
import numpy as np

from _timing import add_out_argument, interleaved, machine_info, machine_line, write_results
from classicvision.features import filters


_BORDER = cv2.BORDER_REFLECT   # our default border, ``mode='reflect'`` (edge pixel repeated)


def opencv_sobel(image):
    return (cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3, borderType=_BORDER),
            cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3, borderType=_BORDER))


def opencv_dog(image, sigma=1.0):
    smooth = cv2.GaussianBlur(image, (0, 0), sigma, borderType=_BORDER)
    return (cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=1, borderType=_BORDER),
            cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=1, borderType=_BORDER))


def one_thread(fn):
    """``fn`` called with ``CLASSICVISION_NUM_THREADS=1`` (read at every call)."""
    def call():
        saved = os.environ.get("CLASSICVISION_NUM_THREADS")
        os.environ["CLASSICVISION_NUM_THREADS"] = "1"
        try:
            return fn()
        finally:
            if saved is None:
                del os.environ["CLASSICVISION_NUM_THREADS"]
            else:
                os.environ["CLASSICVISION_NUM_THREADS"] = saved
    return call


def check_outputs(image) -> dict:
    """Largest differences from OpenCV: Sobel exactly ``cv2.Sobel / 8``; the derivative of Gaussian
    against OpenCV's blur and central differences (another discretization of the same operator)."""
    gx, gy = filters.sobel(image)
    ox, oy = opencv_sobel(image)
    dx, dy = filters.gaussian_gradient(image, 1.0)
    cx, cy = opencv_dog(image)
    return {"sobel": float(max(np.abs(gx - ox / 8).max(), np.abs(gy - oy / 8).max())),
            "gaussian_gradient": float(max(np.abs(dx - cx / 2).max(), np.abs(dy - cy / 2).max()))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512,1024", help="square image sides, comma-separated")
    parser.add_argument("--calls", type=int, default=60, help="timed calls of each method per protocol")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds of sleep before each call (second protocol)")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    rows, checks = [], {}
    for side in (int(s) for s in args.sizes.split(",")):
        image = rng.random((side, side), dtype=np.float32)
        checks[side] = check_outputs(image)
        for operator, ours, theirs in (("Sobel", lambda: filters.sobel(image), lambda: opencv_sobel(image)),
                                       ("derivative of Gaussian s=1", lambda: filters.gaussian_gradient(image, 1.0),
                                        lambda: opencv_dog(image))):
            for protocol, pause in (("back to back", 0.0), (f"{args.pause:g} s pause before each call", args.pause)):
                timings = interleaved({"ours": ours, "ours_1": one_thread(ours), "opencv": theirs}, args.calls,
                                      rounds=args.calls, warmup=1, pause=pause)
                row = {"operator": operator, "size": side, "protocol": protocol, "calls": args.calls}
                for name, timing in timings.items():
                    row[f"{name}_median_ms"] = 1e3 * timing.median
                    row[f"{name}_best_ms"] = 1e3 * timing.best
                    row[f"{name}_times_ms"] = [1e3 * t for t in timing.times]
                row["ratio_median"] = row["opencv_median_ms"] / row["ours_median_ms"]
                row["ratio_best"] = row["opencv_best_ms"] / row["ours_best_ms"]
                rows.append(row)
                print(f"{operator:28s} {side:5d} {protocol:32s} ours {row['ours_median_ms']:.3f} ms, "
                      f"opencv {row['opencv_median_ms']:.3f} ms: {row['ratio_median']:.2f}x", flush=True)
    info = machine_info()
    lines = ["# Gradients: classicvision vs OpenCV, round robins of many calls", "",
             f"Command: `python benchmarks/bench_gradients.py --calls {args.calls} --pause {args.pause:g}`. "
             f"Each row: {args.calls} calls of each method in a round robin (one call each per round, a warm-up "
             "call first); medians and best times in milliseconds; ratio = OpenCV's time / ours (above 1: we are "
             "faster). 'ours, 1 thread': `CLASSICVISION_NUM_THREADS=1`. Images: uniform random float32.", "",
             machine_line(info), "",
             "Outputs: Sobel differs from `cv2.Sobel / 8` by at most "
             + ", ".join(f"{c['sobel']:.1e} ({s} px)" for s, c in checks.items())
             + "; the derivative of Gaussian from OpenCV's blur and central differences by at most "
             + ", ".join(f"{c['gaussian_gradient']:.1e} ({s} px)" for s, c in checks.items())
             + " (another discretization: the sampled derivative-of-Gaussian kernel against a blur then central "
             "differences; the time is what is compared).", "",
             "| operator | size | protocol | ours median | ours best | ours, 1 thread, median | OpenCV median "
             "| OpenCV best | OpenCV / ours (median) | OpenCV / ours (best) |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['operator']} | {r['size']} | {r['protocol']} | {r['ours_median_ms']:.3f} | "
                     f"{r['ours_best_ms']:.3f} | {r['ours_1_median_ms']:.3f} | {r['opencv_median_ms']:.3f} | "
                     f"{r['opencv_best_ms']:.3f} | {r['ratio_median']:.2f} | {r['ratio_best']:.2f} |")
    write_results(args.out, "gradients", "\n".join(lines),
                  {"machine": info, "calls": args.calls, "pause": args.pause, "output_differences": checks,
                   "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
