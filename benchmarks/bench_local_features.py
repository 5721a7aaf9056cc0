"""Time classicvision's local features against OpenCV and scikit-image on the same images, in one run.

Usage::

    python benchmarks/bench_local_features.py [--data DIR] [--repeat 9] [--rounds 3] [--n-points 5000]
                                              [--threads N] [--out benchmarks/results]

Quick check: ``--repeat 1 --out /tmp/bench``. Writes ``local_features.md`` (a table of median
times and ratios) and ``local_features.json`` (also the best times). A ratio is ``their time /
our time``: above 1 means we are faster. The methods of a row are timed by
:func:`_timing.interleaved`: ``--rounds`` batches alternating between them, each batch a warm-up
call (numba compilation and caches excluded) after a 50 ms pause (OpenCV's idle workers
spin-wait) and ``repeat // rounds`` timed calls; the table gives the median of all timed calls.
The images are Notre Dame at scale 0.5 when the shared data exists, else the embedded
motorcycle pair.

Rows: gradients (Sobel, derivative of Gaussian), the Harris response and points (top 3000,
ANMS, subpixel), the Gaussian pyramid (our blur against ``cv2.sepFilter2D``), SIFT descriptors
per point (upright at Harris points; upright and oriented at ``--n-points`` random points) against
``cv2.SIFT.compute`` at the same keypoints, matching 5000 x 5000, and a whole
``match_images`` (DoG and Harris) against OpenCV's SIFT + brute-force matching. Dense SIFT is in
``bench_dense_sift.py``; the stages of the DoG pipeline in ``bench_invariance_stages.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from _timing import add_out_argument, interleaved, machine_info, machine_line, measure, write_results
from classicvision.datasets import find_data_dir, load_pair, stereo_pair
from classicvision.features import filters, scale_space
from classicvision.features._gaussian import cached_gaussian_kernel1d
from classicvision.features.harris import harris, harris_response
from classicvision.features.keypoints import to_cv2_keypoints
from classicvision.features.sift import sift_descriptors
from classicvision.matching import match_descriptors, match_images, nearest_two

SETTLE = 0.05


def opencv_dog(image, sigma):
    smooth = cv2.GaussianBlur(image, (0, 0), sigma)
    return cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=1), cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=1)


def opencv_sift_match(u8_1, u8_2, ratio=0.8):
    sift = cv2.SIFT.create()
    _, d1 = sift.detectAndCompute(u8_1, None)
    _, d2 = sift.detectAndCompute(u8_2, None)
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(d1, d2, k=2)
    return [m for m, n in (p for p in knn if len(p) == 2) if m.distance < ratio * n.distance]


def opencv_blur(image, sigma, out=None):
    """``scale_space._blur`` done by OpenCV: the same cached kernel and border, by ``cv2.sepFilter2D``."""
    g = cached_gaussian_kernel1d(float(sigma))
    return cv2.sepFilter2D(image, cv2.CV_32F, g, g, dst=out, borderType=cv2.BORDER_REFLECT_101)


def pyramid_with(image, blur):
    """``gaussian_pyramid(image)`` with ``scale_space._blur`` (the one blur every level goes
    through) swapped for ``blur``: a benchmark-only patch, undone on return."""
    kept = scale_space._blur
    scale_space._blur = blur
    try:
        return scale_space.gaussian_pyramid(image)
    finally:
        scale_space._blur = kept


def load_images(data):
    root = Path(data) if data else find_data_dir()
    if root is not None and (root / "pairs").is_dir():
        image1, image2, _ = load_pair("notre_dame", root=root, scale=0.5)
        return image1, image2, "Notre Dame at scale 0.5"
    image1, image2, _ = stereo_pair()
    return image1, image2, "motorcycle stereo pair (embedded)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data folder holding pairs/ (default: the shared data)")
    parser.add_argument("--repeat", type=int, default=9, help="timed calls per method and row (1: quick check)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating batches per row")
    parser.add_argument("--n-points", type=int, default=5000, help="random points of the per-point SIFT rows")
    parser.add_argument("--threads", type=int, default=None, help="set OpenCV's and numba's thread counts")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    if args.threads is not None:
        import numba

        cv2.setNumThreads(args.threads)
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))

    image1, image2, source = load_images(args.data)
    u8_1 = np.round(image1 * 255).astype(np.uint8)
    u8_2 = np.round(image2 * 255).astype(np.uint8)
    r = max(1, args.repeat)
    rows = []

    def row(task, ours, opencv=None, skimage=None, note="", per=1, slow_skimage=False):
        """Time the given methods interleaved; ``per`` divides every time (per-point rows)."""
        fns = {"ours": ours, "opencv": opencv, "skimage": None if slow_skimage else skimage}
        timings = interleaved({k: f for k, f in fns.items() if f is not None}, r, rounds=args.rounds,
                              settle=SETTLE)
        if slow_skimage and skimage is not None:   # seconds per call: a third of the calls, not interleaved
            timings["skimage"] = measure(skimage, max(1, r // 3), settle=SETTLE)
        median = {k: t.median / per for k, t in timings.items()}
        best = {k: t.best / per for k, t in timings.items()}
        entry = {"task": task, "note": note}
        for k in ("ours", "opencv", "skimage"):
            entry[f"{k}_ms"] = median[k] * 1e3 if k in median else None
            entry[f"{k}_best_ms"] = best[k] * 1e3 if k in best else None
            if k != "ours":
                entry[f"{k}_ratio"] = median[k] / median["ours"] if k in median else None
        rows.append(entry)
        print(f"{task:52s} ours {entry['ours_ms']:9.3f} ms"
              + (f"  opencv {entry['opencv_ms']:9.3f} ms" if opencv else "")
              + (f"  skimage {entry['skimage_ms']:9.3f} ms" if skimage else ""), file=sys.stderr, flush=True)

    from skimage import data as sk_data
    from skimage.feature import corner_harris, corner_peaks
    from skimage.feature import match_descriptors as sk_match
    from skimage.filters import sobel_h, sobel_v

    row("gradients: Sobel gx, gy", lambda: filters.sobel(image1),
        lambda: (cv2.Sobel(image1, cv2.CV_32F, 1, 0), cv2.Sobel(image1, cv2.CV_32F, 0, 1)),
        lambda: (sobel_v(image1), sobel_h(image1)), "float32 in and out")
    row("gradients: derivative of Gaussian s=1", lambda: filters.gaussian_gradient(image1, 1.0),
        lambda: opencv_dog(image1, 1.0), None, "opencv: GaussianBlur, then central differences")
    square = np.ascontiguousarray(cv2.resize(image1, (1024, 1024), interpolation=cv2.INTER_LINEAR))
    row("gradients: Sobel gx, gy, 1024x1024", lambda: filters.sobel(square),
        lambda: (cv2.Sobel(square, cv2.CV_32F, 1, 0), cv2.Sobel(square, cv2.CV_32F, 0, 1)), None,
        "float32 in and out (the size of the issue-12 goal)")
    row("gradients: derivative of Gaussian s=1, 1024x1024", lambda: filters.gaussian_gradient(square, 1.0),
        lambda: opencv_dog(square, 1.0), None, "opencv: GaussianBlur, then central differences")
    row("Harris response", lambda: harris_response(image1), lambda: cv2.cornerHarris(image1, 2, 3, 0.04),
        lambda: corner_harris(image1, k=0.04, sigma=1.0), "opencv blockSize 2, ksize 3")
    row("Harris response, sigma_d=1 (derivative of Gaussian)", lambda: harris_response(image1, sigma_d=1.0),
        None, None, "")
    row("Harris points (response + NMS + top 3000)", lambda: harris(image1, max_points=3000), None,
        lambda: corner_peaks(corner_harris(image1, k=0.04, sigma=1.0), min_distance=3,
                             threshold_rel=0.01, num_peaks=3000), "skimage corner_peaks")
    row("Harris points, top 500 by ANMS", lambda: harris(image1, max_points=500, anms=True), None, None,
        "Brown et al. 2005, c_robust 0.9")
    row("Harris points, top 500, subpixel", lambda: harris(image1, max_points=500, subpixel=True), None, None,
        "quadratic fit on 3x3 responses")

    ours_blur = scale_space._blur
    for name, image in ((f"{image1.shape[1]}x{image1.shape[0]}", image1), ("512x512 camera", sk_data.camera())):
        difference = max(float(np.abs(a - b).max()) for a, b in
                         zip(pyramid_with(image, ours_blur).octaves, pyramid_with(image, opencv_blur).octaves))
        row(f"Gaussian pyramid, {name} (doubled, 6 levels/octave)", lambda image=image: pyramid_with(image, ours_blur),
            lambda image=image: pyramid_with(image, opencv_blur), None,
            f"opencv: the same blurs (kernel, border) by cv2.sepFilter2D; max difference {difference:.1e}")

    sift = cv2.SIFT.create()
    points = harris(image1, max_points=5000).points
    keypoints = to_cv2_keypoints(points, size=16.0)
    row(f"SIFT descriptors at {len(points)} Harris points, upright (per point)",
        lambda: sift_descriptors(image1, points, size=16.0), lambda: sift.compute(u8_1, keypoints), None,
        "opencv SIFT.compute at the same keypoints, support 16 px", per=max(1, len(points)))
    rng = np.random.default_rng(0)
    height, width = image1.shape
    n = max(1, args.n_points)
    random_points = rng.uniform(0, [width - 1, height - 1], (n, 2)).astype(np.float32)
    for name, theta in (("upright", None), ("oriented", rng.uniform(-np.pi, np.pi, n).astype(np.float32))):
        random_keypoints = to_cv2_keypoints(random_points, size=16.0, orientation=theta)
        row(f"SIFT descriptors at {n} random points, {name} (per point)",
            lambda theta=theta: sift_descriptors(image1, random_points, size=16.0, orientation=theta),
            lambda kp=random_keypoints: sift.compute(u8_1, kp), None,
            "opencv SIFT.compute at the same keypoints, support 16 px", per=n)

    d1 = rng.random((5000, 128), dtype=np.float32)
    d2 = rng.random((5000, 128), dtype=np.float32)
    d1 /= np.linalg.norm(d1, axis=1, keepdims=True)
    d2 /= np.linalg.norm(d2, axis=1, keepdims=True)
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    row("matching 5000 x 5000 (2 nearest + ratio)", lambda: match_descriptors(d1, d2),
        lambda: matcher.knnMatch(d1, d2, k=2), lambda: sk_match(d1, d2, max_ratio=0.8),
        "opencv BFMatcher.knnMatch k=2; skimage: a third of the calls, after the others", slow_skimage=True)
    row("nearest two only 5000 x 5000", lambda: nearest_two(d1, d2), None, None, "")

    row(f"whole match (DoG, default): {source}", lambda: match_images(image1, image2),
        lambda: opencv_sift_match(u8_1, u8_2), None,
        "ours: DoG + orientations + RootSIFT + ratio; opencv: SIFT detect+compute + BFMatcher + ratio")
    row(f"whole match (Harris): {source}", lambda: match_images(image1, image2, detector="harris"), None, None,
        "upright Harris (3000 points) + SIFT 16 px + ratio")

    meta = {"source": source, "repeat": r, "rounds": args.rounds, "settle": SETTLE, "n_points": n,
            **machine_info()}
    lines = ["# Local features: classicvision vs OpenCV and scikit-image", "",
             f"Images: {source}. Median of {r} timed calls per method, in {min(args.rounds, r)} batches "
             f"alternating between the methods of a row (each batch after a warm-up call and a {SETTLE:g} s "
             "pause); the JSON file also has the best times.",
             machine_line(meta),
             "Ratio = their time / our time (above 1: we are faster).", "",
             "| task | ours (ms) | OpenCV (ms) | OpenCV / ours | scikit-image (ms) | skimage / ours | note |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]

    def fmt(v, spec):
        return "" if v is None else format(v, spec)

    for x in rows:
        lines.append(f"| {x['task']} | {fmt(x['ours_ms'], '.4f')} | {fmt(x['opencv_ms'], '.4f')} | "
                     f"{fmt(x['opencv_ratio'], '.2f')} | {fmt(x['skimage_ms'], '.3f')} | "
                     f"{fmt(x['skimage_ratio'], '.2f')} | {x['note']} |")
    text = "\n".join(lines) + "\n"
    write_results(args.out, "local_features", text, {"meta": meta, "rows": rows})
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
