"""Time classicvision's local features against OpenCV and scikit-image on the same images, in one run.

Usage::

    python benchmarks/bench_local_features.py [--data DIR] [--repeat 7] [--out benchmarks/results]

Writes ``local_features.md`` (a table of median times and ratios) and ``local_features.json``.
A ratio is ``their time / our time``: above 1 means we are faster. Every timing is the median of
``--repeat`` runs after one warm-up run (numba compilation and caches excluded). The images
are Notre Dame at scale 0.5 when the shared data exists, else the embedded motorcycle pair.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from _timing import run_times
from classicvision import filters
from classicvision.datasets import find_data_dir, load_pair, stereo_pair
from classicvision.harris import harris, harris_response
from classicvision.matching import match_descriptors, nearest_two
from classicvision.pipeline import match_images
from classicvision.sift import sift_descriptors


def timeit(fn, repeat: int) -> float:
    """Median of :func:`_timing.run_times`."""
    return statistics.median(run_times(fn, repeat))


def opencv_dog(image, sigma):
    smooth = cv2.GaussianBlur(image, (0, 0), sigma)
    return cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=1), cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=1)


def opencv_sift_match(u8_1, u8_2, ratio=0.8):
    sift = cv2.SIFT.create()
    k1, d1 = sift.detectAndCompute(u8_1, None)
    k2, d2 = sift.detectAndCompute(u8_2, None)
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(d1, d2, k=2)
    return [m for m, n in (p for p in knn if len(p) == 2) if m.distance < ratio * n.distance]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)

    root = Path(args.data) if args.data else find_data_dir()
    if root is not None and (root / "pairs").is_dir():
        image1, image2, _ = load_pair("notre_dame", root=root, scale=0.5)
        source = "Notre Dame at scale 0.5"
    else:
        image1, image2, _ = stereo_pair()
        source = "motorcycle stereo pair (embedded)"
    u8_1 = np.round(image1 * 255).astype(np.uint8)
    u8_2 = np.round(image2 * 255).astype(np.uint8)
    r = args.repeat
    rows = []

    def row(task, ours, opencv=None, skimage=None, note=""):
        rows.append({"task": task, "ours_ms": ours * 1e3, "opencv_ms": None if opencv is None else opencv * 1e3,
                     "skimage_ms": None if skimage is None else skimage * 1e3,
                     "opencv_ratio": None if opencv is None else opencv / ours,
                     "skimage_ratio": None if skimage is None else skimage / ours, "note": note})
        print(f"{task:40s} ours {ours * 1e3:9.2f} ms" + (f"  opencv {opencv * 1e3:9.2f} ms" if opencv else "")
              + (f"  skimage {skimage * 1e3:9.2f} ms" if skimage else ""), file=sys.stderr)

    from skimage.feature import corner_harris, corner_peaks
    from skimage.filters import sobel_h, sobel_v

    row("gradients: Sobel gx, gy", timeit(lambda: filters.sobel(image1), r),
        timeit(lambda: (cv2.Sobel(image1, cv2.CV_32F, 1, 0), cv2.Sobel(image1, cv2.CV_32F, 0, 1)), r),
        timeit(lambda: (sobel_v(image1), sobel_h(image1)), r), "float32 in and out")
    row("gradients: derivative of Gaussian s=1", timeit(lambda: filters.gaussian_gradient(image1, 1.0), r),
        timeit(lambda: opencv_dog(image1, 1.0), r), None, "opencv: GaussianBlur, then central differences")
    row("Harris response", timeit(lambda: harris_response(image1), r),
        timeit(lambda: cv2.cornerHarris(image1, 2, 3, 0.04), r),
        timeit(lambda: corner_harris(image1, k=0.04, sigma=1.0), r), "opencv blockSize 2, ksize 3")
    row("Harris points (response + NMS + top 3000)", timeit(lambda: harris(image1, max_points=3000), r), None,
        timeit(lambda: corner_peaks(corner_harris(image1, k=0.04, sigma=1.0), min_distance=3,
                                    threshold_rel=0.01, num_peaks=3000), r), "skimage corner_peaks")

    import classicvision.scale_space as scale_space

    def pyramid_with(image, mirror_blur):
        kept = scale_space._mirror_blur
        scale_space._mirror_blur = mirror_blur
        try:
            return scale_space.gaussian_pyramid(image)
        finally:
            scale_space._mirror_blur = kept

    from skimage import data as sk_data

    ours_blur = scale_space._mirror_blur
    for name, image in ((f"{image1.shape[1]}x{image1.shape[0]}", image1), ("512x512 camera", sk_data.camera())):
        row(f"Gaussian pyramid, {name} (doubled, 6 levels/octave)", timeit(lambda: pyramid_with(image, ours_blur), r),
            timeit(lambda: pyramid_with(image, lambda *a: None), r), None,
            "opencv: the same blurs by cv2.sepFilter2D (scale_space._blur's fallback)")

    points, _ = harris(image1, max_points=5000)
    keypoints = [cv2.KeyPoint(float(x), float(y), 16.0) for x, y in points]
    sift = cv2.SIFT.create()
    ours = timeit(lambda: sift_descriptors(image1, points, size=16.0), r)
    theirs = timeit(lambda: sift.compute(u8_1, keypoints), r)
    n = len(points)
    row(f"SIFT descriptors, {n} points (per point)", ours / n, theirs / n, None,
        "opencv SIFT.compute at the same keypoints, size 16")

    rng = np.random.default_rng(0)
    d1 = rng.random((5000, 128), dtype=np.float32)
    d2 = rng.random((5000, 128), dtype=np.float32)
    d1 /= np.linalg.norm(d1, axis=1, keepdims=True)
    d2 /= np.linalg.norm(d2, axis=1, keepdims=True)
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    from skimage.feature import match_descriptors as sk_match

    row("matching 5000 x 5000 (2 nearest + ratio)", timeit(lambda: match_descriptors(d1, d2), r),
        timeit(lambda: matcher.knnMatch(d1, d2, k=2), r),
        timeit(lambda: sk_match(d1, d2, max_ratio=0.8), max(1, r // 3)), "opencv BFMatcher.knnMatch k=2")
    row("nearest two only 5000 x 5000", timeit(lambda: nearest_two(d1, d2), r), None, None, "")

    ours = timeit(lambda: match_images(image1, image2), r)
    theirs = timeit(lambda: opencv_sift_match(u8_1, u8_2), r)
    row(f"whole match: {source}", ours, theirs, None,
        "ours: Harris + SIFT + ratio; opencv: SIFT detect+compute + BFMatcher + ratio")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"source": source, "repeat": r, "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "opencv": cv2.__version__, "opencv_threads": cv2.getNumThreads(), "numpy": np.__version__,
            "machine": platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M")}
    (out / "local_features.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))

    def fmt(v, spec):
        return "" if v is None else format(v, spec)

    lines = [f"# Local features: classicvision vs OpenCV and scikit-image", "",
             f"Images: {source}. Median of {r} runs after a warm-up; {meta['cpu_count']} cores, OpenCV "
             f"{meta['opencv']} ({meta['opencv_threads']} threads), {meta['date']}.",
             "Ratio = their time / our time (above 1: we are faster).", "",
             "| task | ours (ms) | OpenCV (ms) | OpenCV / ours | scikit-image (ms) | skimage / ours | note |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for x in rows:
        lines.append(f"| {x['task']} | {fmt(x['ours_ms'], '.3f')} | {fmt(x['opencv_ms'], '.3f')} | "
                     f"{fmt(x['opencv_ratio'], '.2f')} | {fmt(x['skimage_ms'], '.3f')} | "
                     f"{fmt(x['skimage_ratio'], '.2f')} | {x['note']} |")
    (out / "local_features.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
