"""Scratch timing of the Harris detector against OpenCV (median and best of N runs, in ms).

Run: ``python benchmarks/bench_harris_dev.py [--threads 2] [--repeat 30]``. The image is
scikit-image's ``astronaut`` (gray, resized to 1024x768 float32); timings on a shared machine
are noisy, so compare the best-of column and re-measure on a quiet one.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numba
import numpy as np
import skimage.data
import skimage.feature

from classicvision import _harris_kernels as hk
from classicvision.harris import harris, harris_response


def _time(fn, repeat):
    fn()  # compile / warm up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times)), 1e3 * float(np.min(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args(argv)
    cv2.setNumThreads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))

    gray = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)
    image = cv2.resize(gray, (1024, 768), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    response = harris_response(image)
    threshold = np.float32(0.01 * response.max())
    n_points = len(harris(image)[0])

    cases = {
        "harris_response (Sobel)": lambda: harris_response(image),
        "harris_response (sigma_d=1)": lambda: harris_response(image, sigma_d=1.0),
        "NMS kernel alone (min_distance=3)": lambda: hk._nms_mask(response, 3, 8, threshold),
        f"harris (defaults, {n_points} points)": lambda: harris(image),
        "harris (max_points=500, anms)": lambda: harris(image, max_points=500, anms=True),
        "harris (max_points=500, subpixel)": lambda: harris(image, max_points=500, subpixel=True),
        "skimage corner_harris + corner_peaks": lambda: skimage.feature.corner_peaks(
            skimage.feature.corner_harris(image, k=0.04), min_distance=3, threshold_rel=0.01),
        # last: OpenCV's worker threads keep spinning after a call and would slow the others
        "cv2.cornerHarris(img, 2, 3, 0.04)": lambda: cv2.cornerHarris(image, 2, 3, 0.04),
    }
    print(f"image {image.shape} float32, {args.threads} threads, median / best of {args.repeat} (ms)")
    for name, fn in cases.items():
        median, best = _time(fn, args.repeat if "skimage" not in name else 3)
        print(f"  {name:<42s} {median:8.2f} {best:8.2f}")


if __name__ == "__main__":
    main()
