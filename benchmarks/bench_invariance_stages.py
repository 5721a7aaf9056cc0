"""Stage times of our DoG detector and descriptor against OpenCV's SIFT, back to back, in one run.

A cross-check of ``bench_invariance.py`` without its pauses: on warped bundled images (as in the
invariance suite), each round calls once, in this order and with no pause in between, each of
our stages on the previous stage's output (computed once beforehand): the Gaussian pyramid, the
DoG extrema with refinement, the orientations, the descriptors (RootSIFT, on the pyramid); then
our whole :func:`classicvision.features.extract.detect_and_describe` (DoG, RootSIFT) and
``cv2.SIFT.detectAndCompute`` on the 8-bit image (:func:`_timing.interleaved` with
``rounds=repeat`` and no warm-up: a round robin; the kernels are compiled before). Per image:
the shortest stage times, the shortest and median whole times, and the keypoint counts;
overall, the median over images of our median time over OpenCV's.

OpenCV's time here depends on glibc's malloc (its fresh buffers fault pages in);
``MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=1000000000`` shows its best case.

Run: ``python benchmarks/bench_invariance_stages.py [--repeat 10] [--images camera,astronaut,coffee]
[--out benchmarks/results]``; writes ``invariance_stages.md`` and ``invariance_stages.json``.
Quick check: ``--repeat 1 --images camera --out /tmp/bench``.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from _timing import add_out_argument, interleaved, machine_info, machine_line, write_results
from bench_invariance import eight_bit, load_images, warp
from classicvision.features.extract import detect_and_describe
from classicvision.features.orientation import assign_orientations
from classicvision.features.scale_space import dog_extrema, gaussian_pyramid
from classicvision.features.sift import sift_descriptors

WARPS = ((0, 1.0), (30, 0.75), (90, 1.5))
STAGES = ("pyramid", "extrema", "orientation", "describe")


def calls(image, sift):
    """The timed calls for one image, in round order, and the keypoint counts (DoG points, rows
    after orientation assignment, OpenCV's)."""
    pyramid = gaussian_pyramid(image)
    found = dog_extrema(pyramid)
    keypoints = found.keypoints().strongest(None)   # as detect_and_describe orders them
    oriented = assign_orientations(pyramid, keypoints)
    image_u8 = eight_bit(image)
    fns = {"pyramid": lambda: gaussian_pyramid(image),
           "extrema": lambda: dog_extrema(pyramid),
           "orientation": lambda: assign_orientations(pyramid, keypoints),
           "describe": lambda: sift_descriptors(pyramid, oriented, rootsift=True),
           "ours": lambda: detect_and_describe(image, descriptor="rootsift"),
           "opencv": lambda: sift.detectAndCompute(image_u8, None)}
    counts = (len(keypoints), len(oriented), len(sift.detect(image_u8, None)))
    return fns, counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="rounds (timed calls of each); 1: quick check")
    parser.add_argument("--images", default="camera,astronaut,coffee",
                        help="comma-separated scikit-image images (gray)")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    repeat = max(1, args.repeat)
    sift = cv2.SIFT.create()
    cases = [(name, degrees, scale, warp(image, degrees, scale)[0])
             for name, image in load_images(tuple(args.images.split(","))).items() for degrees, scale in WARPS]
    prepared = [calls(image, sift) for *_, image in cases]
    for fns, _ in prepared:                       # compile or load the numba kernels
        for fn in fns.values():
            fn()
    rows = []
    for (name, degrees, scale, _), (fns, (n_points, n_rows, n_opencv)) in zip(cases, prepared):
        timings = interleaved(fns, repeat, rounds=repeat, warmup=0)
        row = {"image": name, "rotation": degrees, "scale": scale, "points": n_points, "rows": n_rows,
               "opencv_points": n_opencv,
               **{f"{stage}_best_ms": timings[stage].best * 1e3 for stage in STAGES},
               "ours_best_ms": timings["ours"].best * 1e3, "ours_median_ms": timings["ours"].median * 1e3,
               "opencv_best_ms": timings["opencv"].best * 1e3, "opencv_median_ms": timings["opencv"].median * 1e3}
        row["ratio_median"] = row["ours_median_ms"] / row["opencv_median_ms"]
        rows.append(row)
        print(f"{name:9s} {degrees:3d} deg x{scale:4.2f}  pyramid {row['pyramid_best_ms']:5.1f}  extrema "
              f"{row['extrema_best_ms']:5.1f}  orientation {row['orientation_best_ms']:5.1f}  describe "
              f"{row['describe_best_ms']:5.1f} ms | ours min {row['ours_best_ms']:5.1f} median "
              f"{row['ours_median_ms']:5.1f} | OpenCV min {row['opencv_best_ms']:5.1f} median "
              f"{row['opencv_median_ms']:5.1f} ms | points {n_points} rows {n_rows} OpenCV {n_opencv}", flush=True)
    ratio = float(np.median([r["ratio_median"] for r in rows]))
    info = machine_info()
    lines = ["# Stages of our DoG + SIFT against OpenCV's SIFT, back to back", "",
             f"Command: `python benchmarks/bench_invariance_stages.py --repeat {repeat} --images {args.images}`. "
             f"{repeat} rounds per image, each calling every stage, our whole `detect_and_describe` (DoG, "
             "RootSIFT) and `cv2.SIFT.detectAndCompute` once, with no pause (round robin, kernels compiled "
             "before). Stage times: the shortest; whole times: shortest / median (ms).",
             machine_line(info), "",
             f"**Median over images of ours / OpenCV (median times): {ratio:.2f}**", "",
             "| image | rotation | scale | pyramid | extrema | orientation | describe | ours min | ours median "
             "| OpenCV min | OpenCV median | ours / OpenCV | points | rows | OpenCV points |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['image']} | {r['rotation']} | {r['scale']} | "
                     + " | ".join(f"{r[f'{s}_best_ms']:.1f}" for s in STAGES)
                     + f" | {r['ours_best_ms']:.1f} | {r['ours_median_ms']:.1f} | {r['opencv_best_ms']:.1f} "
                       f"| {r['opencv_median_ms']:.1f} | {r['ratio_median']:.2f} | {r['points']} | {r['rows']} "
                       f"| {r['opencv_points']} |")
    text = "\n".join(lines) + "\n"
    write_results(args.out, "invariance_stages", text,
                  {"repeat": repeat, "images": args.images, "median_ratio": ratio, "machine": info, "rows": rows})
    print(f"median over images of ours / OpenCV (median times): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
