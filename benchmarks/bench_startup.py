"""Start-up: import time, cold and warm ``classicvision match`` end to end, against an OpenCV script.

Every number is the wall time of a fresh Python process (``subprocess``), Python start included:

* ``import classicvision`` and, for reference, ``import numpy, cv2``;
* ``classicvision match --json`` on the embedded motorcycle pair, with each detector:
  *cold* with an empty ``NUMBA_CACHE_DIR`` (a first run on a fresh install: the kernels compile),
  *warm* with the cache that run filled;
* a Python script doing what a user would otherwise write: read the same pair, OpenCV SIFT
  ``detectAndCompute`` on both images, a brute-force matcher with Lowe's ratio test at 0.8.

Cold runs are repeated with a new empty cache folder each time; warm runs alternate with the
OpenCV script (round robin), so that both meet the same minutes of the host. Writes
``results/startup.md`` and ``startup.json``.

    python benchmarks/bench_startup.py [--repeat 5] [--cold-repeat 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import _timing

OPENCV_SCRIPT = """
import cv2, numpy as np
from skimage import data
left, right, _ = data.stereo_motorcycle()
gray = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in (left, right)]
sift = cv2.SIFT_create()
(k1, d1), (k2, d2) = (sift.detectAndCompute(g, None) for g in gray)
pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(d1, d2, k=2)
good = [m for m, n in pairs if m.distance <= 0.8 * n.distance]
print(len(k1), len(k2), len(good))
"""


def _run(argv, env=None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()[-500:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="warm runs (and import runs) per command")
    parser.add_argument("--cold-repeat", type=int, default=2, help="cold runs per detector (each compiles)")
    _timing.add_out_argument(parser)
    args = parser.parse_args()
    python = sys.executable
    commands = {
        "import classicvision": [python, "-c", "import classicvision"],
        "import numpy, cv2": [python, "-c", "import numpy, cv2"],
        "OpenCV SIFT + ratio test script": [python, "-c", OPENCV_SCRIPT],
    }
    times: dict[str, list[float]] = {}
    for detector in ("dog", "harris"):
        match = [python, "-m", "classicvision", "match", "--json", "--detector", detector]
        cold = []
        for _ in range(args.cold_repeat):
            with tempfile.TemporaryDirectory(prefix="numba-cold-") as cache:
                cold.append(_run(match, {"NUMBA_CACHE_DIR": cache}))
        times[f"match --detector {detector}, cold (empty NUMBA_CACHE_DIR)"] = cold
        commands[f"match --detector {detector}, warm"] = match
    for name in commands:
        _run(commands[name])                      # warm-up: fills the default cache, loads the files
    for _ in range(args.repeat):                  # round robin over the warm commands
        for name, argv in commands.items():
            times.setdefault(name, []).append(_run(argv))
    opencv = statistics.median(times["OpenCV SIFT + ratio test script"])
    numpy_cv2 = statistics.median(times["import numpy, cv2"])
    info = _timing.machine_info()
    lines = ["# Start-up", "", _timing.machine_line(info), "",
             "Wall time of a fresh process, Python start included (median of the runs; min in brackets).", "",
             "| command | median s | min s | / OpenCV script | / import numpy, cv2 |", "| --- | --- | --- | --- | --- |"]
    data = {"machine": info, "repeat": args.repeat, "cold_repeat": args.cold_repeat, "rows": {}}
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.3f} | {min(values):.3f} | {median / opencv:.2f}x | "
                     f"{median / numpy_cv2:.2f}x |")
        data["rows"][name] = {"times": values, "median": median, "min": min(values),
                              "ratio_to_opencv_script": median / opencv, "ratio_to_import_numpy_cv2": median / numpy_cv2}
    lines += ["", "Goals (issue 12): import <= 0.3 s and <= 2x `import numpy, cv2`; warm match <= 2x the OpenCV "
              "script; cold match <= 6 s.", ""]
    md, js = _timing.write_results(args.out, "startup", "\n".join(lines), data)
    print("\n".join(lines))
    print(f"wrote {md} and {js}")


if __name__ == "__main__":
    main()
