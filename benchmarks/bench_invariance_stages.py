"""Scratch timing: the stages of our invariant detector and descriptor against OpenCV's SIFT, back to back.

A cross-check of ``bench_invariance.py`` without its pauses: on warped bundled images (as in the
invariance suite), each round calls our stages one by one (pyramid, DoG extrema with refinement,
orientations, descriptors), then our whole ``detect_and_describe_invariant`` (RootSIFT), then
``cv2.SIFT.detectAndCompute`` on the 8-bit image, with no pause in between. Per image: the
shortest stage times, the shortest and median whole times, and the keypoint counts; overall, the
median over images of our median time over OpenCV's.

OpenCV's time here depends on glibc's malloc (its fresh buffers fault pages in);
``MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=1000000000`` shows its best case.

Run: ``python benchmarks/bench_invariance_stages.py [--repeat 10]`` (prints; writes nothing).
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from bench_invariance import load_images, warp
from classicvision.invariant import _describe, detect_and_describe_invariant
from classicvision.orientation import dominant_orientations
from classicvision.scale_space import dog_extrema, gaussian_pyramid

WARPS = ((0, 1.0), (30, 0.75), (90, 1.5))


def stages(image) -> tuple[np.ndarray, int, int]:
    """Seconds of pyramid, extrema, orientations, descriptors; points; rows (point, orientation)."""
    times = [time.perf_counter()]
    pyramid = gaussian_pyramid(image)
    times.append(time.perf_counter())
    found = dog_extrema(pyramid)
    times.append(time.perf_counter())
    index, theta = dominant_orientations(pyramid, found.points, found.scales)
    times.append(time.perf_counter())
    _describe(pyramid, found.points[index], found.scales[index], theta, True)
    times.append(time.perf_counter())
    return np.diff(times), len(found.points), len(index)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)
    sift = cv2.SIFT.create()
    cases = [(name, degrees, scale, warp(image, degrees, scale)[0])
             for name, image in load_images().items() for degrees, scale in WARPS]
    for *_, image in cases:                       # compile or load the numba kernels
        stages(image)
        detect_and_describe_invariant(image, rootsift=True)
    ratios = []
    for name, degrees, scale, image in cases:
        eight_bit = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
        parts, ours, theirs = [], [], []
        for _ in range(args.repeat):
            seconds, n_points, n_rows = stages(image)
            parts.append(seconds)
            start = time.perf_counter()
            detect_and_describe_invariant(image, rootsift=True)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            keypoints, _ = sift.detectAndCompute(eight_bit, None)
            theirs.append(time.perf_counter() - start)
        best = np.min(parts, axis=0) * 1e3
        ratios.append(np.median(ours) / np.median(theirs))
        print(f"{name:9s} {degrees:3d} deg x{scale:4.2f}  pyramid {best[0]:5.1f}  extrema {best[1]:5.1f}  "
              f"orientation {best[2]:5.1f}  describe {best[3]:5.1f} ms | ours min {min(ours) * 1e3:5.1f} "
              f"median {np.median(ours) * 1e3:5.1f} | OpenCV min {min(theirs) * 1e3:5.1f} median "
              f"{np.median(theirs) * 1e3:5.1f} ms | points {n_points} rows {n_rows} OpenCV {len(keypoints)}")
    print(f"median over images of ours / OpenCV (median times): {np.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
