"""Scratch timing: classicvision SIFT (sparse and dense) against cv2.SIFT.compute on the same keypoints.

Run: ``python benchmarks/bench_sift_dev.py`` (numbers are noisy on a shared machine; each timing
is the best of ``--repeat`` runs after one warm-up call that also compiles the numba kernels).
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from _timing import best_of
from classicvision.datasets import embedded_pair
from classicvision.dense_sift import dense_grid, dense_sift
from classicvision.sift import sift_descriptors, to_cv2_keypoints


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--n-points", type=int, default=5000)
    args = parser.parse_args(argv)
    image = embedded_pair()[0]
    image_u8 = (image * 255).round().astype(np.uint8)
    sift = cv2.SIFT.create()
    rng = np.random.default_rng(0)

    height, width = image.shape
    points = rng.uniform(0, [width - 1, height - 1], (args.n_points, 2)).astype(np.float32)
    for name, orientation in (("upright", None), ("oriented", rng.uniform(-np.pi, np.pi, args.n_points))):
        keypoints = to_cv2_keypoints(points, size=16.0, orientation=orientation)
        t_cv = best_of(lambda: sift.compute(image_u8, keypoints), args.repeat)
        t_us = best_of(lambda: sift_descriptors(image_u8, points, size=16.0, orientation=orientation),
                       args.repeat)
        print(f"sparse {name:8s} {args.n_points} pts on {image.shape}: cv2 {t_cv * 1e3:7.1f} ms "
              f"({t_cv / args.n_points * 1e6:5.2f} us/pt), ours {t_us * 1e3:7.1f} ms "
              f"({t_us / args.n_points * 1e6:5.2f} us/pt), speed-up {t_cv / t_us:5.1f}x")

    small = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA)
    small_u8 = (small * 255).round().astype(np.uint8)
    for step in (8, 4):
        grid = dense_grid(small.shape, step=step, size=16)
        keypoints = to_cv2_keypoints(grid, size=16.0)
        t_cv = best_of(lambda: sift.compute(small_u8, keypoints), args.repeat)
        t_us = best_of(lambda: dense_sift(small_u8, step=step, size=16), args.repeat)
        print(f"dense step {step}: {len(grid)} pts on 256x256: cv2 {t_cv * 1e3:7.1f} ms, "
              f"ours {t_us * 1e3:7.1f} ms, speed-up {t_cv / t_us:5.1f}x")


if __name__ == "__main__":
    main()
