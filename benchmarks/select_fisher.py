"""Model selection for ``bench fisher`` on the 15-Scene TRAINING split only (never the test split).

For one setting of dense SIFT + FisherVector, the PCA and mixture are learned on a sample of the
training images (as ``run_fisher`` does), every training image and its mirror image is encoded,
and LinearSVC is scored by stratified 5-fold cross-validation on the training images (balanced
accuracy, that is mean per-class accuracy), for every C of a grid and four ways of using the
mirror images: none; mirrors added to the training folds only (``mirror``); the validation
image's decision averaged with its mirror's (``tta``); both. An image and its mirror are always
on the same side of a fold. The spans of :class:`classicvision.experiments.fisher.TrainingSpan`
make each fit cheap.

Usage (several settings append rows to one file)::

    python benchmarks/select_fisher.py --data ../shared/data                       # the defaults
    python benchmarks/select_fisher.py --data ../shared/data --pyramid 1x1,2x2,1x3 --append

Writes ``select_fisher.md`` / ``.json`` into ``--out`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from _timing import add_out_argument, machine_info, machine_line, write_results
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from classicvision.datasets import scene15_dir
from classicvision.experiments.cache import CachedFeatures
from classicvision.experiments.fisher import TrainingSpan
from classicvision.experiments.scene import list_splits
from classicvision.experiments.streaming import stream_images
from classicvision.recognition.fisher import FisherVector
from classicvision.recognition.transformers import DenseSIFT, ImageFeatures

C_GRID = (3.0, 10.0, 30.0, 100.0)
VARIANTS = (("none", False, False), ("mirror", True, False), ("tta", False, True), ("mirror + tta", True, True))


def _grids(text: str) -> tuple:
    return tuple(tuple(int(v) for v in cell.split("x")) for cell in text.split(","))


def evaluate(data, *, sizes, step, n_components, n_pca, pyramid, sample_size, folds, threads, progress) -> dict:
    """CV scores of one setting: ``{variant: {C: mean balanced accuracy}}`` and the stage seconds."""
    train, y, _, _, _ = list_splits(data)
    features = CachedFeatures(DenseSIFT(step=step, sizes=sizes, rootsift=True))
    per_image = -(-sample_size // len(train))
    t0 = time.perf_counter()

    def sampled(i, path):
        f = features.features_of(path)[0]
        take = np.sort(np.random.default_rng([0, i]).choice(len(f.descriptors), min(per_image, len(f.descriptors)),
                                                             replace=False))
        return ImageFeatures(f.points[take], f.descriptors[take], f.shape)

    sample = [f for _, f in stream_images(train, sampled, threads=threads, progress=progress, desc="sample")]
    encoder = FisherVector(n_components, n_pca=n_pca, pyramid=pyramid, max_iter=20, n_jobs=threads,
                           random_state=0).fit(sample)
    del sample
    encoder.set_params(n_jobs=None)
    t1 = time.perf_counter()

    def encoded(i, path):
        return [encoder.transform([features.features_of(path, mirror=m)[0]])[0] for m in (False, True)]

    with threadpool_limits(1, user_api="blas"):
        rows = [r for _, r in stream_images(train, encoded, threads=threads, progress=progress, desc="encode")]
    x, x_mirror = np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])
    del rows
    t2 = time.perf_counter()
    scores = {name: {c: [] for c in C_GRID} for name, _, _ in VARIANTS}
    for fit, check in StratifiedKFold(folds, shuffle=True, random_state=0).split(x, y):
        for mirror in (False, True):
            xt = np.concatenate([x[fit], x_mirror[fit]]) if mirror else x[fit]
            yt = np.tile(y[fit], 2) if mirror else y[fit]
            span = TrainingSpan()
            z = span.fit_transform(xt)
            del xt
            z_check, z_mirror = span.transform(x[check]), span.transform(x_mirror[check])
            for c in C_GRID:
                svm = LinearSVC(C=c, tol=1e-3, random_state=0).fit(z, yt)
                plain = svm.decision_function(z_check)
                both = plain + svm.decision_function(z_mirror)
                for name, uses_mirror, tta in VARIANTS:
                    if uses_mirror == mirror:
                        decision = both if tta else plain
                        scores[name][c].append(balanced_accuracy_score(y[check], svm.classes_[decision.argmax(1)]))
    cv = {name: {c: float(np.mean(v)) for c, v in by_c.items()} for name, by_c in scores.items()}
    return {"cv": cv, "dimension": int(x.shape[1]), "seconds": {"pca_gmm": t1 - t0, "encode": t2 - t1,
                                                                "cv": time.perf_counter() - t2}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data root holding scene15/ (default: CLASSICVISION_DATA, ../shared/data)")
    parser.add_argument("--sizes", default="16,24,32", help="dense SIFT patch sizes (default 16,24,32)")
    parser.add_argument("--step", type=int, default=4)
    parser.add_argument("--n-components", type=int, default=256)
    parser.add_argument("--n-pca", type=int, default=80)
    parser.add_argument("--pyramid", default="1x1,2x2", help="grids COLUMNSxROWS (default 1x1,2x2)")
    parser.add_argument("--sample-size", type=int, default=100_000)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--append", action="store_true", help="add a row to the existing results file")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    setting = {"sizes": tuple(int(s) for s in args.sizes.split(",")), "step": args.step,
               "n_components": args.n_components, "n_pca": args.n_pca, "pyramid": _grids(args.pyramid),
               "sample_size": args.sample_size, "folds": args.folds}
    result = evaluate(scene15_dir(args.data), **setting, threads=args.threads, progress=sys.stderr.isatty())
    rows = []
    previous = args.out / "select_fisher.json"
    if args.append and previous.is_file():
        rows = json.loads(previous.read_text())["rows"]
    rows.append({"setting": {k: list(v) if isinstance(v, tuple) else v for k, v in setting.items()}, **result,
                 "machine": machine_info()})
    lines = ["# Fisher-vector model selection on 15-Scene train (benchmarks/select_fisher.py)", "",
             "Stratified 5-fold cross-validation on the 1500 training images only (balanced accuracy = mean "
             "per-class accuracy); an image and its mirror image always in the same fold. `mirror`: the mirror "
             "images of the training folds added to them; `tta`: a validation image's SVM decision summed with its "
             "mirror's. Best C of " + ", ".join(f"{c:g}" for c in C_GRID) + " per cell.", "",
             "| sizes | step | K | PCA | pyramid | dimension | " + " | ".join(n for n, _, _ in VARIANTS) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(VARIANTS)]
    for row in rows:
        s, cv = row["setting"], row["cv"]
        best = {name: max(cv[name].items(), key=lambda kv: kv[1]) for name, _, _ in VARIANTS}
        lines.append(f"| {s['sizes']} | {s['step']} | {s['n_components']} | {s['n_pca']} | "
                     f"{' + '.join(f'{c}x{r}' for c, r in s['pyramid'])} | {row['dimension']} | "
                     + " | ".join(f"{best[n][1]:.4f} (C={float(best[n][0]):g})" for n, _, _ in VARIANTS) + " |")
    lines += ["", machine_line(rows[-1]["machine"])]
    write_results(args.out, "select_fisher", "\n".join(lines), {"rows": rows})
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
