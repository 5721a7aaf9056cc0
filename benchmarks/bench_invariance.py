"""Synthetic rotation/scale invariance suite: ours (DoG + orientation + SIFT) against OpenCV's SIFT.

Each bundled scikit-image image (``camera``, ``astronaut`` and ``coffee`` in gray) is rotated
about its centre by 0, 30, ..., 180 degrees and scaled by 0.5, 0.75, 1, 1.5, 2
(``cv2.warpAffine``, bilinear, same frame size; the source is pre-blurred by
``0.5 sqrt(1/s**2 - 1)`` when shrinking, so that both methods see an unaliased image). The warp
is a known homography, so a match is *exactly* correct when its reprojection error
``|H p1 - p2|`` is below 3 pixels (:func:`classicvision.matching.evaluation.homography_correct`).

All methods are run in the same process on the same images:

* ours: :func:`classicvision.features.extract.detect_and_describe` (``detector="dog"``, library
  defaults: Lowe's doubled first octave, as OpenCV; plain SIFT descriptors unless
  ``--rootsift``) + :func:`classicvision.matching.match_descriptors` (ratio 0.8);
* ours, no upsampling: the same with ``upsample=False`` (about a third of the work, fewer points);
* OpenCV: ``cv2.SIFT.create().detectAndCompute`` on the 8-bit image + ``BFMatcher.knnMatch(k=2)``
  + ratio 0.8, sorted by ``1 - d1/d2``.

Reported per rotation and per scale: accuracy among all ratio-test matches, the number of
matches, and detect+describe seconds per image (median over images of the best of ``--repeat``
calls, each after a ``--settle`` pause: :func:`_timing.measure` with ``pause``; see
:func:`timed`); overall, also the accuracy among the
100 most confident matches and the time relative to OpenCV's. Writes
``invariance.md`` and ``invariance.json`` into ``--out`` (default ``benchmarks/results``).

Usage::

    python benchmarks/bench_invariance.py [--quick] [--rootsift] [--repeat 3] [--settle 0.05] [--out benchmarks/results]

(``--rootsift`` writes ``invariance_rootsift.md``/``.json``.) Quick check:
``--quick --repeat 1 --out /tmp/bench`` (camera only, four rotations, three scales).
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from _timing import add_out_argument, machine_info, machine_line, measure, write_results
from classicvision.features.extract import detect_and_describe
from classicvision.features.filters import gaussian
from classicvision.io import as_float_image
from classicvision.matching import match_descriptors
from classicvision.matching.evaluation import homography_correct

ROTATIONS = (0, 30, 60, 90, 120, 150, 180)
SCALES = (0.5, 0.75, 1.0, 1.5, 2.0)
TOP = 100


def load_images(names=("camera", "astronaut", "coffee")) -> dict:
    from skimage import data

    return {name: as_float_image(getattr(data, name)()) for name in names}


def warp(image: np.ndarray, degrees: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by ``degrees`` (counter-clockwise on screen) and scale about the centre."""
    height, width = image.shape
    M = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), degrees, scale)
    source = gaussian(image, 0.5 * np.sqrt(1 / scale ** 2 - 1)) if scale < 1 else image
    warped = cv2.warpAffine(source, M, (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return np.ascontiguousarray(warped, np.float32), np.vstack([M, [0.0, 0.0, 1.0]])


ROOTSIFT = False


def ours(image, upsample=True):
    """The timed call of ours on ``image`` (float32): points and descriptors."""
    keypoints, descriptors = detect_and_describe(image, detector="dog", upsample=upsample,
                                                 descriptor="rootsift" if ROOTSIFT else "sift")
    return keypoints.points, descriptors


def ours_fast(image):
    return ours(image, upsample=False)


_SIFT = cv2.SIFT.create()
_MATCHER = cv2.BFMatcher(cv2.NORM_L2)


def eight_bit(image):
    """OpenCV's input (untimed): the image in 8 bits."""
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def opencv(image_u8):
    """The timed call of OpenCV: ``detectAndCompute``; :func:`opencv_arrays` converts its result."""
    return _SIFT.detectAndCompute(image_u8, None)


def opencv_arrays(result):
    keypoints, descriptors = result
    points = np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2)
    if descriptors is None:
        descriptors = np.zeros((0, 128), np.float32)
    return points, descriptors.astype(np.float32)


def identity(x):
    return x


def opencv_match(descriptors1, descriptors2, ratio=0.8):
    if len(descriptors1) == 0 or len(descriptors2) < 2:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    pairs = [p for p in _MATCHER.knnMatch(descriptors1, descriptors2, k=2) if len(p) == 2]
    kept = [(a.queryIdx, a.trainIdx, 1 - a.distance / b.distance) for a, b in pairs
            if b.distance > 0 and a.distance <= ratio * b.distance]
    if not kept:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    kept.sort(key=lambda t: (-t[2], t[0]))
    matches = np.array([(i, j) for i, j, _ in kept], np.int64)
    return matches, np.array([c for _, _, c in kept], np.float32)


def score(points1, points2, matches, H) -> dict:
    correct = homography_correct(points1, points2, matches, H, tolerance=3.0)
    return {"matches": int(len(matches)),
            "accuracy": float(correct.mean()) if len(correct) else 0.0,
            "accuracy_top": float(correct[:TOP].mean()) if len(correct) else 0.0}


# name: (prepare the input, untimed; the timed call; its result to (points, descriptors); match)
METHODS = {"ours": (identity, ours, identity, match_descriptors),
           "ours_fast": (identity, ours_fast, identity, match_descriptors),
           "opencv": (eight_bit, opencv, opencv_arrays, opencv_match)}
LABELS = {"ours": "ours", "ours_fast": "ours, no upsampling", "opencv": "OpenCV"}


SETTLE = 0.05
REPEAT = 3


def timed(method, image):
    """``method``'s points and descriptors of ``image``, and its shortest time over ``REPEAT`` calls,
    each after a ``SETTLE`` s pause (:func:`_timing.measure`, no warm-up: the kernels are compiled
    before the suite). Without the pause a method pays for the one before it: OpenCV's worker
    threads spin-wait after a job (its matcher, then its detector), and measured that doubled the
    time of the next call of ours (65 ms against 36 ms, ``--repeat 1 --settle 0``)."""
    prepare, call, finish, _ = METHODS[method]
    argument = prepare(image)
    timing = measure(lambda: call(argument), REPEAT, warmup=0, pause=SETTLE)
    points, descriptors = finish(timing.result)
    return points, descriptors, timing.best


def describe_once(method, image):
    """``method``'s points and descriptors of ``image``, untimed."""
    prepare, call, finish, _ = METHODS[method]
    return finish(call(prepare(image)))


def run(images: dict, rotations=ROTATIONS, scales=SCALES) -> list[dict]:
    rows = []
    for name, image in images.items():
        reference = {method: describe_once(method, image) for method in METHODS}
        for degrees in rotations:
            for scale in scales:
                warped, H = warp(image, degrees, scale)
                row = {"image": name, "rotation": degrees, "scale": scale}
                for method in METHODS:
                    p1, d1 = reference[method]
                    p2, d2, seconds = timed(method, warped)
                    matches, _ = METHODS[method][3](d1, d2)
                    row[method] = dict(score(p1, p2, matches, H), seconds=seconds, points=int(len(p2)))
                rows.append(row)
    return rows


def _mean(rows, method, key, **where):
    values = [r[method][key] for r in rows if all(r[k] == v for k, v in where.items())]
    return float(np.mean(values)) if values else float("nan")


def _median(rows, method, key, **where):
    values = [r[method][key] for r in rows if all(r[k] == v for k, v in where.items())]
    return float(np.median(values)) if values else float("nan")


def report(rows: list[dict]) -> str:
    methods = [m for m in LABELS if m in rows[0]]
    lines = ["# Rotation and scale invariance (synthetic, exact homography truth)", "",
             f"Images: {', '.join(sorted({r['image'] for r in rows}))}; a match is correct when its "
             "reprojection error is < 3 px. `all` = among all ratio-test (0.8) matches, "
             f"`top{TOP}` = among the {TOP} most confident; time = detect + describe per warped image "
             f"(seconds; median over images of the best of {REPEAT} calls, each after a {SETTLE:g} s pause; "
             "noisy on a shared machine). `ours` is the library default (Lowe's doubled "
             "first octave, as OpenCV); `ours, no upsampling` is `upsample=False`.", ""]
    columns = [(f"{LABELS[m]} {what}", m, key) for what, key in
               (("all", "accuracy"), ("matches", "matches"), ("s/img", "seconds")) for m in methods]
    formats = {"accuracy": "{:.1%}", "accuracy_top": "{:.1%}", "matches": "{:.0f}", "seconds": "{:.3f}"}
    for axis, values in (("rotation", sorted({r["rotation"] for r in rows})),
                         ("scale", sorted({r["scale"] for r in rows}))):
        lines += [f"## By {axis} (mean over images and the other factor; time: median)", "",
                  "| " + " | ".join([axis] + [c[0] for c in columns]) + " |", "|---" * (len(columns) + 1) + "|"]
        for v in values:
            cells = [formats[key].format((_median if key == "seconds" else _mean)(rows, m, key, **{axis: v}))
                     for _, m, key in columns]
            lines.append("| " + " | ".join([str(v)] + cells) + " |")
        lines.append("")
    lines += ["## Overall", "",
              f"| method | accuracy all | accuracy top{TOP} | matches | s/img (median) | time vs OpenCV |",
              "|---|---|---|---|---|---|"]
    opencv_seconds = _median(rows, "opencv", "seconds")
    for method in methods:
        seconds = _median(rows, method, "seconds")
        lines.append("| {} | {:.1%} | {:.1%} | {:.0f} | {:.3f} | {:.2f}x |".format(
            LABELS[method], _mean(rows, method, "accuracy"), _mean(rows, method, "accuracy_top"),
            _mean(rows, method, "matches"), seconds, seconds / opencv_seconds))
    lines += ["", machine_line(machine_info()) + " (Load average at the end.)", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    global ROOTSIFT, REPEAT, SETTLE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_out_argument(parser)
    parser.add_argument("--quick", action="store_true", help="camera only, four rotations, three scales")
    parser.add_argument("--rootsift", action="store_true", help="our descriptors as RootSIFT (OpenCV stays SIFT)")
    parser.add_argument("--repeat", type=int, default=REPEAT, help="timed calls per image and method (best kept)")
    parser.add_argument("--settle", type=float, default=SETTLE, help="pause in seconds before each timed call")
    args = parser.parse_args(argv)
    ROOTSIFT, REPEAT, SETTLE = args.rootsift, max(1, args.repeat), max(0.0, args.settle)
    name = "invariance_rootsift" if args.rootsift else "invariance"
    if args.quick:
        images, rotations, scales = load_images(("camera",)), (0, 30, 90, 150), (0.5, 1.0, 2.0)
    else:
        images, rotations, scales = load_images(), ROTATIONS, SCALES
    first = images[next(iter(images))]
    for method in ("ours", "ours_fast"):  # compile the numba kernels outside the timings
        METHODS[method][1](first)
    rows = run(images, rotations, scales)
    text = report(rows) + f"\nOurs with descriptor={'rootsift' if ROOTSIFT else 'sift'}.\n"
    write_results(args.out, name, text, {"rows": rows, "rootsift": ROOTSIFT, "repeat": REPEAT, "settle": SETTLE,
                                         "quick": args.quick, "machine": machine_info()})
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
