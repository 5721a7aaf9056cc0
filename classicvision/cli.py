"""The ``classicvision`` command line: ``match`` an image pair, run the ``bench`` jobs.

Every command returns an exit code instead of raising: a bad file, a too-small image or a
pair without matches prints one line ``classicvision: error: ...`` on stderr and exits 1
(2 for usage errors, as argparse does). ``--json`` prints exactly one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import numbers
import sys
import time
from pathlib import Path

from .features.affine import AFFINE_DETECTORS
from .features.extract import DESCRIPTORS, DETECTORS
from .matching.pipeline import VERIFY_MODELS

__all__ = ["main"]

MIN_SIDE = 32  # smallest image side the match pipeline accepts (a SIFT support must fit)


class CommandError(Exception):
    """An error to report as one line, without a traceback."""


_DATA_HELP = ("data root holding pairs/ and scene15/, or the dataset folder itself "
              "(default: $CLASSICVISION_DATA, else ../shared/data)")


def _match_parser(sub) -> None:
    p = sub.add_parser("match", help="match an image pair (keypoints + SIFT + ratio test)",
                       description="Match two images; without images, run on the embedded motorcycle stereo pair.")
    p.add_argument("image1", nargs="?", help="first image file")
    p.add_argument("image2", nargs="?", help="second image file")
    p.add_argument("--pair", help="a ground-truth pair of the data folder (notre_dame, mt_rushmore, e_gaudi)")
    p.add_argument("--data", help=_DATA_HELP)
    p.add_argument("--ground-truth", metavar="CSV", help="x1,y1,x2,y2 correspondences in full-resolution pixels")
    p.add_argument("--scale", type=float, default=None,
                   help="resize both images by this factor first (default 0.5 for files, 1 for the embedded pair)")
    p.add_argument("--top", type=int, default=100, help="evaluate the TOP most confident matches (default 100)")
    p.add_argument("--tolerance", type=float, default=40.0,
                   help="ground-truth offset tolerance in full-resolution pixels (default 40; 25 is also reported)")
    p.add_argument("--detector", choices=DETECTORS + AFFINE_DETECTORS, default="dog",
                   help="dog: scale- and rotation-invariant DoG keypoints with dominant orientations (default); "
                        "harris: upright single-scale Harris corners (the course baseline, fastest); "
                        "hessian-affine, harris-affine: affine-adapted Hessian-/Harris-Laplace regions")
    p.add_argument("--descriptor", choices=DESCRIPTORS, default="rootsift",
                   help="RootSIFT (default) or plain SIFT descriptors")
    p.add_argument("--max-points", type=int, default=None,
                   help="keypoints per image (default: every DoG point, 3000 Harris points)")
    p.add_argument("--max-ratio", "--ratio", dest="max_ratio", type=float, default=0.8,
                   help="ratio-test threshold (default 0.8, Lowe)")
    p.add_argument("--cross-check", action="store_true", help="keep only mutual nearest neighbours")
    p.add_argument("--upright", action=argparse.BooleanOptionalAction, default=None,
                   help="skip (or force) orientation assignment; default: the detector's (DoG oriented, "
                        "Harris upright)")
    p.add_argument("--upsample", action=argparse.BooleanOptionalAction, default=None,
                   help="with --detector dog: double the image before the scale space (Lowe's octave -1: "
                        "more points, about 3x slower); default on")
    p.add_argument("--tilts", nargs="?", const="2,4", default=None, metavar="T,T,...",
                   help="ASIFT-style view synthesis for strong viewpoint changes: also describe each image's "
                        "views simulated at these camera tilts (alone: 2,4, i.e. 16 views per image, about 10x "
                        "the time); default off")
    p.add_argument("--verify", choices=VERIFY_MODELS,
                   help="keep only the inliers of a robust (MAGSAC++) homography or fundamental-matrix fit")
    p.add_argument("--out", metavar="PNG", help="save a picture of the matches (green correct, red wrong)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _bench_parser(sub) -> None:
    bench = sub.add_parser("bench", help="run a scene-recognition benchmark").add_subparsers(dest="bench", required=True)
    for name, text in (("bovw", "bag of words + linear SVM"), ("fisher", "improved Fisher vectors + linear SVM"),
                       ("cnn", "CNN trained from scratch"), ("compare", "all methods side by side")):
        p = bench.add_parser(name, help=text, description=f"15-Scene benchmark: {text}.")
        p.add_argument("--data", help=_DATA_HELP)
        p.add_argument("--out", help="output folder for report.md, results.json and pictures")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        p.add_argument("--seed", "--random-state", dest="seed", type=int, default=0, help="random seed (default 0)")
        if name == "compare":
            p.add_argument("--methods", default=None, metavar="M,M,...",
                           help="the methods to run, comma-separated, from tiny_knn, bovw, vlad, fisher, cnn, "
                                "cnn_svm (default: all; cnn and cnn_svm share one CNN run)")
        if name in ("bovw", "compare"):
            p.add_argument("--n-words", type=int, default=None, help="codebook size (bag of words)")
            p.add_argument("--levels", type=int, default=None, help="spatial pyramid levels (3 = 1x1+2x2+4x4)")
            p.add_argument("--cache", help="features cache folder" + (" of bag of words" if name == "compare" else "")
                           + " (default: under --out)")
        if name in ("bovw", "fisher"):
            p.add_argument("--scheduler", metavar="local[:N]|tcp://HOST:PORT", default=None,
                           help="run on a Dask cluster: local starts N worker processes (default: the CPU count), "
                                "an address connects to a running scheduler; needs the [dask] extra (default: "
                                "one process)")
            p.add_argument("--classifier", choices=("exact", "sgd"), default=None,
                           help="with --scheduler: exact (cross-validated LinearSVC, the encodings in memory; "
                                "default) or sgd (hinge SGD over the stored partitions, out of core)")
        if name == "fisher":
            p.add_argument("--encoding", choices=("fisher", "vlad"), default=None,
                           help="fisher (default) or vlad (intra-normalized)")
        if name in ("fisher", "compare"):
            p.add_argument("--n-components", type=int, default=None, help="Gaussians in the mixture (default 256)")
            p.add_argument("--n-pca", type=int, default=None, help="PCA dimensions of the descriptors (default 80)")
        if name == "fisher":
            p.add_argument("--cache", help="features cache folder (default: no cache)")
            p.add_argument("--no-mirror", dest="mirror", action="store_false", default=None,
                           help="train on the training images only, not also on their mirror images")
        if name == "compare":
            p.add_argument("--vlad-words", type=int, default=None, help="VLAD codebook size (default 64)")
        if name in ("cnn", "compare"):
            p.add_argument("--epochs", type=int, default=None,
                           help="training epochs (bench cnn: the most within the time budget; default 400)")
        if name == "cnn":
            p.add_argument("--device", default=None, metavar="auto|cpu|cuda[:N]",
                           help="where the network runs: auto (default) takes CUDA when torch sees a GPU, else the CPU")
            p.add_argument("--max-seconds", type=float, default=None, metavar="S",
                           help="budget of the whole run in seconds (default 870); training takes what reading, "
                                "prediction and the SVM leave, and chooses its epochs after the first; 0: no budget, "
                                "exactly --epochs")
            p.add_argument("--threads", default=None, metavar="N|auto",
                           help="torch threads (default auto: the faster of 1 and 2 on a short probe)")
            p.add_argument("--image-size", type=int, default=None, help="network input side in pixels (default 64)")
            p.add_argument("--tta", choices=("none", "flip", "crops"), default=None,
                           help="test-time views: centre crop, + mirror (default), + four corner crops and mirrors")
            p.add_argument("--test-size", type=int, default=None,
                           help="network input side at prediction (default: the training size)")
            p.add_argument("--precision", choices=("float32", "bfloat16", "auto"), default=None,
                           help="training arithmetic: bfloat16 autocast, float32, or auto (bfloat16 where the "
                                "CPU or GPU computes it natively)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="classicvision", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True)
    _match_parser(sub)
    _bench_parser(sub)
    return parser


# ---------------------------------------------------------------------------------------- match
def _load_inputs(args):
    """Images, truth and a description of the pair, from the arguments."""
    from .datasets import data_dir, pair_paths, read_ground_truth, stereo_pair
    from .io import read_image, resize

    if args.pair and (args.image1 or args.image2):
        raise CommandError("give either IMAGE1 IMAGE2 or --pair, not both")
    if args.image1 and not args.image2:
        raise CommandError("IMAGE2 is missing: give two images, or none for the embedded default")
    truth_path = args.ground_truth
    if args.pair:
        path1, path2, truth_path = pair_paths(args.pair, root=data_dir(args.data))
        truth_path = args.ground_truth or truth_path
    elif args.image1:
        path1, path2 = Path(args.image1), Path(args.image2)
    else:
        if truth_path:
            raise CommandError("--ground-truth needs IMAGE1 IMAGE2")
        scale = 1.0 if args.scale is None else args.scale
        left, right, disparity = stereo_pair()
        if scale != 1.0:
            left, right = resize(left, scale), resize(right, scale)
        return dict(name="motorcycle (scikit-image stereo pair, disparity ground truth)", image1=left,
                    image2=right, scale=scale, kind="disparity", truth=disparity)
    scale = 0.5 if args.scale is None else args.scale
    image1 = read_image(path1, scale=scale)
    image2 = read_image(path2, scale=scale)
    truth = read_ground_truth(truth_path) if truth_path else None
    return dict(name=f"{path1} / {path2}", image1=image1, image2=image2, scale=scale,
                kind="ground_truth" if truth is not None else None, truth=truth)


def _evaluate(inputs, result, top: int, tolerance: float) -> dict:
    from .matching import evaluation

    kind = inputs["kind"]
    matches = result.matches[:top]
    if kind is None:
        return {"accuracy": None, "correct": None}
    if kind == "disparity":
        scale = inputs["scale"]
        correct, known = evaluation.disparity_check(result.points1 / scale, result.points2 / scale, matches,
                                                    inputs["truth"], tolerance=2.0)
        accuracy = float(correct[known].mean()) if known.any() else None
        return {"accuracy": accuracy, "correct": correct, "evaluated": int(known.sum()),
                "criterion": "disparity (2 px at full resolution; matches with unknown disparity excluded)"}
    out = {}
    for tol in sorted({tolerance, 25.0, 40.0}, reverse=True):
        correct = evaluation.ground_truth_correct(result.points1, result.points2, matches, inputs["truth"],
                                                  scale=inputs["scale"], tolerance=tol)
        out[f"accuracy_{tol:g}px"] = float(correct.mean()) if len(correct) else None
        if tol == tolerance:
            out["accuracy"], out["correct"] = out[f"accuracy_{tol:g}px"], correct
    out["criterion"] = f"customary ground truth (150 px radius, {tolerance:g} px offset tolerance)"
    out["evaluated"] = int(len(matches))
    return out


def _parse_tilts(text):
    """``--tilts`` as a tuple of floats >= 1, or None when not given."""
    if text is None:
        return None
    try:
        tilts = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        tilts = ()
    if not tilts or not all(1.0 <= t <= 64.0 for t in tilts):
        raise CommandError(f"--tilts must be comma-separated numbers in [1, 64], got {text!r}")
    return tilts


def _run_match(args) -> int:
    from .matching.pipeline import match_images

    if args.top <= 0:
        raise CommandError(f"--top must be positive, got {args.top}")
    if args.upsample is not None and args.detector != "dog":
        raise CommandError("--upsample/--no-upsample apply to --detector dog only")
    if args.scale is not None and not 0 < args.scale <= 4:
        raise CommandError(f"--scale must be in (0, 4], got {args.scale}")
    if args.tolerance <= 0:
        raise CommandError(f"--tolerance must be positive, got {args.tolerance}")
    tilts = _parse_tilts(args.tilts)
    if tilts and args.detector not in DETECTORS:
        raise CommandError(f"--tilts applies to --detector dog or harris, not {args.detector}")
    if args.out:
        from .viz import save_format

        save_format(args.out)      # an unknown picture format is refused before any work
    from ._warm import precompiling

    # A first run compiles its kernels in two processes at once; the child starts before the inputs are read.
    with precompiling("match_harris" if args.detector == "harris" else "match_dog"):
        start = time.perf_counter()
        inputs = _load_inputs(args)
        read_seconds = time.perf_counter() - start
        for key in ("image1", "image2"):
            if min(inputs[key].shape) < MIN_SIDE:
                raise CommandError(f"{key} is too small: {inputs[key].shape[1]}x{inputs[key].shape[0]} pixels "
                                   f"after scaling, need at least {MIN_SIDE}x{MIN_SIDE}")
    result = match_images(inputs["image1"], inputs["image2"], detector=args.detector, descriptor=args.descriptor,
                          max_points=args.max_points, upright=args.upright, upsample=args.upsample,
                          max_ratio=args.max_ratio, cross_check=args.cross_check, verify=args.verify, tilts=tilts)
    verified = None
    if args.verify:
        verified = int(result.inliers.sum())
        result = result.verified()
    if len(result.matches) == 0:
        raise CommandError(f"no matches between the two images ({len(result.points1)} and "
                           f"{len(result.points2)} points)")
    evaluation = _evaluate(inputs, result, args.top, args.tolerance)
    seconds = {"read": read_seconds, **result.seconds}
    if args.out:
        from .viz import save_matches

        save_matches(args.out, inputs["image1"], inputs["image2"], result.points1, result.points2,
                     result.matches[:args.top], correct=evaluation.get("correct"))
    report = {"pair": inputs["name"], "scale": inputs["scale"], "n_points1": int(len(result.points1)),
              "n_points2": int(len(result.points2)), "n_matches": int(len(result.matches)), "top": args.top,
              "detector": args.detector, "descriptor": args.descriptor, "max_ratio": args.max_ratio,
              "verify": args.verify, "tilts": list(tilts) if tilts else None,
              "n_inliers": verified,
              **{k: v for k, v in evaluation.items() if k != "correct"},
              "seconds": round(seconds["read"] + seconds["total"], 4),
              "stage_seconds": {k: round(v, 4) for k, v in seconds.items()}, "picture": args.out}
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"pair: {report['pair']} (scale {report['scale']:g})")
    print(f"points: {report['n_points1']} and {report['n_points2']}")
    print(f"matches: {report['n_matches']}" + (f" (inliers of a {args.verify} fit)" if args.verify else ""))
    if report["accuracy"] is None:
        print("accuracy: n/a (no ground truth)")
    else:
        extra = "".join(f", {k[9:]}: {v:.1%}" for k, v in report.items() if k.startswith("accuracy_"))
        print(f"accuracy of the top {min(args.top, report['n_matches'])}: {report['accuracy']:.1%} "
              f"[{report['criterion']}{extra}]")
    print("time: " + ", ".join(f"{k} {v:.3f} s" for k, v in report["stage_seconds"].items()))
    if args.out:
        print(f"picture: {args.out}")
    return 0


# ---------------------------------------------------------------------------------------- bench
def _run_bench(args) -> int:
    from .datasets import scene15_dir

    data = scene15_dir(args.data)
    out = Path(args.out) if args.out else Path("results") / f"bench_{args.bench}"
    options = {"out": out, "progress": not args.json, "random_state": args.seed}
    if args.bench == "compare":
        return _report_bench(args, out, _run_compare(args, data, options))
    for key in ("n_words", "levels", "epochs", "encoding", "n_components", "n_pca", "mirror", "device", "image_size",
                "tta", "test_size", "precision"):
        if getattr(args, key, None) is not None:
            options[key] = getattr(args, key)
    if getattr(args, "max_seconds", None) is not None:
        options["max_seconds"] = args.max_seconds or None
    if getattr(args, "threads", None) is not None:
        if args.threads != "auto" and not args.threads.isdigit():
            raise CommandError(f"--threads must be a positive integer or auto, got {args.threads!r}")
        options["n_threads"] = args.threads if args.threads == "auto" else int(args.threads)
    if getattr(args, "cache", None):
        options["cache"] = Path(args.cache)
    if args.bench in ("bovw", "fisher") and args.scheduler is not None:
        from .distributed import scene as dask_scene
        from .distributed.cluster import parse_scheduler

        parse_scheduler(args.scheduler)  # a bad value is one line before any work
        if "cache" in options:
            raise CommandError("--cache does not apply with --scheduler: the partitions are stored under --out")
        if options.pop("encoding", "fisher") != "fisher":
            raise CommandError("--encoding vlad does not apply with --scheduler: the Dask runner encodes Fisher "
                               "vectors")
        options.pop("mirror", None)  # --no-mirror: the Dask runner never adds mirror images
        options["scheduler"] = args.scheduler
        if args.classifier is not None:
            options["classifier"] = args.classifier
        run = dask_scene.run_bovw_dask if args.bench == "bovw" else dask_scene.run_fisher_dask
    elif getattr(args, "classifier", None) is not None:
        raise CommandError("--classifier applies with --scheduler (the single-process runners use the exact SVM)")
    elif args.bench == "bovw":
        from .experiments.scene import run_bovw as run
    elif args.bench == "fisher":
        from .experiments.fisher import run_fisher as run
    else:
        from .experiments.cnn import run_cnn as run
    return _report_bench(args, out, run(data, **options))


def _run_compare(args, data, options) -> dict:
    """``bench compare``: each option goes to the runner of its method."""
    from .experiments.compare import run_compare

    def given(**names):
        return {key: getattr(args, name) for key, name in names.items() if getattr(args, name) is not None}

    bovw = given(n_words="n_words", levels="levels")
    if args.cache:
        bovw["cache"] = Path(args.cache)
    extra = {"methods": args.methods} if args.methods is not None else {}
    if args.epochs is not None:
        extra["epochs"] = args.epochs
    return run_compare(data, **options, **extra, bovw_options=bovw, vlad_options=given(n_words="vlad_words"),
                       fisher_options=given(n_components="n_components", n_pca="n_pca"))


def _report_bench(args, out, results) -> int:
    from .experiments.reports import json_default

    if args.json:
        print(json.dumps(results, default=json_default))
    else:
        print(f"report: {out / 'report.md'}")
        for key in ("accuracy", "mean_per_class_accuracy", "seconds"):
            if key in results:
                value = results[key]
                print(f"{key}: {value:.4f}" if isinstance(value, numbers.Real) else f"{key}: {value}")
        if isinstance(results.get("summary"), str):
            print(results["summary"])
    return 0


_USER_ERRORS = (CommandError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
                ValueError, TypeError, ModuleNotFoundError)


def _silence_opencv() -> None:
    """OpenCV's own decoder warnings would add lines to the one-line errors."""
    import cv2

    logging_module = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_module is not None:
        logging_module.setLogLevel(logging_module.LOG_LEVEL_SILENT)
    elif hasattr(cv2, "setLogLevel"):  # pragma: no cover - older OpenCV
        cv2.setLogLevel(0)


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    _silence_opencv()
    try:
        return _run_match(args) if args.command == "match" else _run_bench(args)
    except KeyboardInterrupt:
        print("classicvision: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the command line never shows a traceback unasked
        if args.debug:
            raise
        text = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, _USER_ERRORS):
            print(f"classicvision: error: {text}", file=sys.stderr)
            return 1
        if isinstance(exc, OSError):
            print(f"classicvision: error: {type(exc).__name__}: {text}", file=sys.stderr)
            return 1
        print(f"classicvision: internal error ({type(exc).__name__}: {text}); this is a bug, not your input: "
              "rerun with --debug for the traceback", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
