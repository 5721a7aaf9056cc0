"""15-Scene benchmark of the CNN: ``bench cnn``.

:func:`run_cnn` trains :class:`classicvision.recognition.cnn.CNNClassifier` from scratch on ``data/train``,
evaluates it on ``data/test``, then fits a linear SVM on its penultimate features ("CNN features +
linear classifier", C chosen by 5-fold cross-validation on the training split only). The
side-by-side comparison of all scene methods is :mod:`classicvision.experiments.compare`.

It writes ``report.md`` and ``results.json`` under ``out`` (checked to be writable before anything
runs) and, while running, ``partial.json`` after every stage; the test split is used only for the
final numbers, never to choose settings. Degenerate data (no usable training image, one class,
no usable test image) is refused with one line, as in :mod:`classicvision.experiments.scene`. Accuracy is the fraction of test images classified
right; mean per-class accuracy is the mean of the per-class recalls (the confusion matrix's
diagonal, rows normalized), the number reported by Lazebnik et al. 2006. Timings are wall-clock
seconds on this machine, including the CPU load of whatever else runs (the load average is
recorded next to them).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from ..datasets import data_dir, read_images
from ..recognition.augment import TTA_VIEWS, augment_batch
from ..recognition.cnn import CNNClassifier, CNNFeatures, import_torch
from ..recognition.cnn import resolve_device, resolve_precision, training_autocast
from ..recognition.networks import build_network, memory_format
from .reports import scores as class_scores
from .reports import write_partial, write_report
from .scene import check_training_classes, list_split
from .workers import check_writable_folder, guarded

__all__ = ["run_cnn"]

#: The defaults of ``classicvision bench cnn`` (:func:`run_cnn`): a small ResNet on 64 px inputs, trained for
#: as many epochs as the time budget allows (up to 400; about 2.9 s an epoch of the 1500 images on 2 threads),
#: all 1500 training images fitted. Chosen on a validation split of train (``benchmarks/ablate_cnn.py``,
#: ``benchmarks/results/cnn_ablation.md``): within a fixed budget the epochs decide, so 64 px beat 112 px by
#: 22 points and 80 px by 8; the ResNet and the SimpleNet tie at 64 px; milder crops lose 3 points there.
#: Training arithmetic 'auto': bfloat16 where the CPU (AVX-512 BF16, AMX) or GPU computes it natively, which
#: ran 1.76x the epochs of float32 in the same budget and scored 12 points more (``cnn_ablation_bf16.md``).
CNN_DEFAULTS = dict(architecture="resnet", channels=(32, 64, 128, 256), blocks=1, image_size=64, dropout=0.3,
                    epochs=400, batch_size=64, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4,
                    schedule="cosine", warmup_epochs=2, label_smoothing=0.1, mixup=0.0, crop_scale=(0.25, 1.0),
                    crop_ratio=(3 / 4, 4 / 3), rotation=10.0, jitter=0.2, tta="flip", test_size=None,
                    precision="auto", val_fraction=0.0)
#: Default budget of a whole ``bench cnn`` run in seconds (reading, training, prediction, SVM), under 900.
RUN_SECONDS = 870.0
SVM_C_GRID = (0.001, 0.01, 0.1, 1.0)
# Seconds kept for the SVM's cross-validation and the report, besides the estimated prediction passes.
_SVM_RESERVE = 30.0
_ABLATION = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "cnn_ablation.md"


def _say(progress: bool, text: str) -> None:
    if progress:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _read_split(root, split: str, class_names=None):
    """``root/split`` as (images, labels (n,) int64, class_names, errors); unreadable files are skipped."""
    paths, labels, names = list_split(root, split, class_names)
    images, kept, errors = read_images(paths)
    return images, labels[kept], names, errors


def _save_curves(out: Path, history) -> None:
    from ..viz import save_training_curves

    curves = {"loss": history["loss"], "train accuracy (augmented)": history["train_accuracy"]}
    if not np.isnan(history["val_accuracy"]).all():
        curves["held-out accuracy (from the training split)"] = history["val_accuracy"]
    save_training_curves(out / "training_curves.png", curves, title="CNN on 15-Scene")


def _environment() -> dict:
    torch = import_torch()
    return {"torch": torch.__version__, "cpus": os.cpu_count(), "machine": platform.machine(),
            "load_average": [round(v, 2) for v in os.getloadavg()]}


def _probe(settings: dict, n_classes: int, device: str, thread_counts, steps: int = 4) -> dict:
    """Seconds per training image and per prediction view of a throwaway network like the real one.

    For each thread count: one warm-up step, then ``steps`` timed SGD steps on random images (with
    the default augmentation) and ``steps`` timed inference batches, fewer when a count is already
    1.5x slower than one timed before (on a loaded machine two threads can be 5x slower). The
    global torch generator is forked, so the real training is not affected. Returns ``{threads:
    (train s/image, predict s/view)}``.
    """
    torch = import_torch()
    size, batch = settings["image_size"], min(int(settings["batch_size"]), 32)
    found, saved = {}, torch.get_num_threads()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            generator = torch.Generator().manual_seed(0)
            net = build_network(n_classes, architecture=settings["architecture"], channels=settings["channels"],
                                blocks=settings["blocks"], dropout=settings["dropout"])
            layout = memory_format(net)
            net = net.to(device=device, memory_format=layout)
            optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
            images = torch.rand(batch, 1, size + 2 * round(size / 16), size + 2 * round(size / 16)).to(device)
            labels = torch.randint(0, n_classes, (batch,), generator=generator).to(device)

            autocast = training_autocast(device, resolve_precision(settings["precision"], device))

            def train_step():
                x = augment_batch(images, size, generator).contiguous(memory_format=layout)
                with autocast:
                    loss = torch.nn.functional.cross_entropy(net(x), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            def predict_step():
                with torch.inference_mode():
                    net(images[..., :size, :size].contiguous(memory_format=layout))

            for threads in thread_counts:
                torch.set_num_threads(threads)
                timed = []
                for step, mode in ((train_step, True), (predict_step, False)):
                    net.train(mode)
                    step()
                    sync()
                    start, done = time.perf_counter(), 0
                    for _ in range(steps):
                        step()
                        sync()
                        done += 1
                        slower = found and (time.perf_counter() - start) / (done * batch) > 1.5 * min(
                            f[len(timed)] for f in found.values())
                        if slower:  # clearly slower than a count already timed: no need for more steps
                            break
                    timed.append((time.perf_counter() - start) / (done * batch))
                found[threads] = tuple(timed)
    finally:
        torch.set_num_threads(saved)
    return found


def _features_svm(train_features, y_train, test_features, y_test, class_names, random_state, *,
                  train_feature_seconds, test_feature_seconds):
    """LinearSVC on the CNN's penultimate features; C by 5-fold CV on the training split."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    start = time.perf_counter()
    search = GridSearchCV(make_pipeline(StandardScaler(), LinearSVC(dual="auto", max_iter=5000)),
                          {"linearsvc__C": list(SVM_C_GRID)},
                          cv=StratifiedKFold(5, shuffle=True, random_state=random_state))
    search.fit(train_features, y_train)
    train_seconds = train_feature_seconds + time.perf_counter() - start
    start = time.perf_counter()
    predicted = search.predict(test_features)
    predict_seconds = test_feature_seconds + time.perf_counter() - start
    return {"method": "CNN features + linear SVM", **class_scores(y_test, predicted, class_names),
            "C": float(search.best_params_["linearsvc__C"]), "cv_accuracy": float(search.best_score_),
            "train_seconds": train_seconds,
            "predict_seconds_per_image": predict_seconds / max(len(y_test), 1),
            "n_features": int(train_features.shape[1])}


def _plan(settings, n_classes, n_images, device, n_threads, max_seconds, start_all, progress):
    """The thread count and the training budget: ``(n_threads, fit max_seconds or None, budget record)``."""
    counts = sorted({1, min(2, os.cpu_count() or 1)}) if n_threads == "auto" else [n_threads]
    start = time.perf_counter()
    probe = _probe(settings, n_classes, device, counts)
    probe_seconds = time.perf_counter() - start
    elapsed = time.perf_counter() - start_all
    chosen = min(probe, key=lambda t: probe[t][0]) if n_threads == "auto" else n_threads
    train_rate, view_seconds = probe[chosen]
    reserve = 1.6 * view_seconds * TTA_VIEWS[settings["tta"]] * n_images + _SVM_RESERVE
    record = {"max_seconds": max_seconds, "probe_seconds_per_training_image": {t: p[0] for t, p in probe.items()},
              "probe_seconds_per_view": {t: p[1] for t, p in probe.items()}, "n_threads": chosen,
              "n_threads_rule": "the faster of 1 and 2 threads on a short probe" if n_threads == "auto" else "given",
              "reserve_seconds": reserve, "probe_seconds": probe_seconds, "elapsed_before_training": elapsed}
    if max_seconds is None:
        record["train_max_seconds"] = None
        return chosen, None, record
    train_seconds = max_seconds - elapsed - reserve
    if train_seconds < 10:
        raise ValueError(f"max_seconds={max_seconds:g} leaves no time to train: {elapsed:.0f} s went to reading "
                         f"and {reserve:.0f} s are needed to predict and fit the SVM")
    record["train_max_seconds"] = train_seconds
    _say(progress, f"threads: {chosen} ({', '.join(f'{t}: {1 / p[0]:.0f} images/s' for t, p in probe.items())}); "
                   f"training budget {train_seconds:.0f} s of {max_seconds:.0f} (reserve {reserve:.0f} s)")
    return chosen, train_seconds, record


@guarded
def run_cnn(data, *, epochs=None, out=None, progress=True, random_state=0, max_seconds=RUN_SECONDS, n_threads="auto",
            device="auto", ablation=None, **options) -> dict:
    """Train the CNN on ``data/train``, test on ``data/test``, and write a report.

    Parameters
    ----------
    data : path
        Folder with ``train/<class>/*`` and ``test/<class>/*``.
    epochs : int or None
        Training epochs: the most with a budget, exactly without (default ``CNN_DEFAULTS['epochs']``).
    out : path or None
        Output folder for ``report.md``, ``results.json``, ``confusion.png``,
        ``training_curves.png`` and ``weights.pt`` (+ ``weights.pt.json``); nothing is written if None.
    progress : bool
        Print one line per epoch (loss, train accuracy, held-out accuracy) on stderr.
    random_state : int
    max_seconds : float or None
        Budget of the whole run (default :data:`RUN_SECONDS`). Training gets what is left after
        reading the images, minus an estimate of the prediction and SVM time (from a probe of a
        few batches, times 1.6 for what the probe leaves out, plus 30 s), and chooses its epochs from its first one
        (:class:`~classicvision.recognition.cnn.CNNClassifier`'s ``max_seconds``). None: no
        budget, ``epochs`` epochs. The plan is recorded (``settings['epochs_planned']``,
        ``settings['n_threads']``): ``epochs=that, max_seconds=None, n_threads=that`` repeats the run.
    n_threads : int or 'auto'
        torch threads; ``'auto'`` times a few training steps at 1 and 2 threads and takes the faster
        (on a loaded 2-core machine one thread can be twice as fast as two).
    device : str
        ``'auto'`` (CUDA when torch sees it, else the CPU), ``'cpu'``, ``'cuda'``, ``'cuda:N'``.
    ablation : path or None
        A ``cnn_ablation.md`` of ``benchmarks/ablate_cnn.py`` to include in the report (when its
        ``.json`` is beside it: the script writes both); default ``benchmarks/results/cnn_ablation.md``
        of this checkout.
    **options
        Other :class:`~classicvision.recognition.cnn.CNNClassifier` parameters (``lr``, ``image_size``, ...).

    Returns
    -------
    dict
        ``accuracy``, ``mean_per_class_accuracy``, ``per_class_accuracy``, ``confusion_matrix``,
        ``class_names`` (:func:`~classicvision.experiments.reports.scores`), ``y_true``, ``y_pred``,
        ``seconds`` (whole run), ``stage_seconds``, ``read_train_seconds``, ``read_test_seconds``, ``train_seconds``,
        ``predict_seconds_per_image``, ``epoch_seconds``, ``history``, ``settings`` (the classifier's
        parameters, ``epochs`` the epochs run, ``epochs_planned``, ``max_epochs``, ``device``,
        ``n_threads``, ``stopped_early``), ``budget``, ``skipped`` (unreadable files), ``environment``
        and ``cnn_features_svm`` (the same keys for the linear SVM on CNN features, plus its ``C``).
    """
    start_all = time.perf_counter()
    if out is not None:
        out = check_writable_folder(out, "out")
    root = data_dir(data)
    environment = _environment()
    device = resolve_device(device)
    settings = {**CNN_DEFAULTS, **options, "random_state": random_state}
    if epochs is not None:
        settings["epochs"] = epochs
    settings["max_epochs"] = settings["epochs"]
    done = {}

    def finished(name, **info):
        done[name] = info
        write_partial(out, done, method="cnn", data=str(root), settings=settings)

    start = time.perf_counter()
    train_images, y_train, class_names, train_errors = _read_split(root, "train")
    read_train_seconds = time.perf_counter() - start
    warnings = check_training_classes(y_train, class_names, root / "train", skipped=train_errors)
    test_images, y_test, _, test_errors = _read_split(root, "test", class_names)
    read_test_seconds = time.perf_counter() - start - read_train_seconds
    if not test_images:
        raise ValueError(f"no usable test image in {root / 'test'}: all {len(test_errors)} files were skipped"
                         + (f" (first: {test_errors[0]})" if test_errors else ""))
    finished("read", seconds={"train": read_train_seconds, "test": read_test_seconds}, n_train=len(train_images),
             n_test=len(test_images), skipped=train_errors + test_errors, warnings=warnings)
    for message in train_errors + test_errors:
        _say(progress, f"skipped unreadable image {message}")
    threads, train_budget, budget = _plan(settings, len(class_names), len(train_images) + len(test_images), device,
                                          n_threads, max_seconds, start_all, progress)
    settings.update(n_threads=threads, device=device)
    _say(progress, f"CNN: {len(train_images)} training, {len(test_images)} test images, "
                   f"{len(class_names)} classes, at most {settings['epochs']} epochs, {settings['architecture']} "
                   f"{settings['image_size']} px on {device}, {threads} thread(s), "
                   f"load {environment['load_average']}")

    def report_epoch(epoch, total, record):
        _say(progress, f"epoch {epoch:3d}/{total}  loss {record['loss']:.3f}  train acc {record['train_accuracy']:.3f}"
                       f"  held-out acc {record['val_accuracy']:.3f}  lr {record['lr']:.4f}  {record['seconds']:.1f} s")

    classifier_options = {k: v for k, v in settings.items() if k != "max_epochs"}
    clf = CNNClassifier(**classifier_options, max_seconds=train_budget, progress=report_epoch)
    start = time.perf_counter()
    clf.fit(train_images, y_train)
    train_seconds = time.perf_counter() - start
    history = {k: [float(v) for v in values] for k, values in clf.history_.items()}
    settings.update(epochs=len(history["loss"]), epochs_planned=clf.epochs_, stopped_early=clf.stopped_early_,
                    precision_used=clf.precision_)
    budget["train_max_seconds_used"] = train_seconds
    finished("train", seconds=train_seconds, history=history, epochs_planned=clf.epochs_)
    start = time.perf_counter()
    proba, test_features = clf.predict_proba_and_features(test_images)
    predicted = clf.labels(proba)
    predict_seconds = time.perf_counter() - start
    scores = class_scores(y_test, predicted, class_names)
    finished("predict", seconds=predict_seconds, y_true=y_test.tolist(), y_pred=np.asarray(predicted).tolist(),
             accuracy=scores["accuracy"], mean_per_class_accuracy=scores["mean_per_class_accuracy"])
    _say(progress, f"CNN: accuracy {scores['accuracy']:.3f}, mean per-class {scores['mean_per_class_accuracy']:.3f}, "
                   f"training {train_seconds:.0f} s ({settings['epochs']} epochs)")
    start = time.perf_counter()
    train_features = CNNFeatures(classifier=clf).fit().transform(train_images)
    svm = _features_svm(train_features, y_train, test_features, y_test, class_names, random_state,
                        train_feature_seconds=time.perf_counter() - start, test_feature_seconds=predict_seconds)
    _say(progress, f"CNN features + linear SVM (C={svm['C']:g}): accuracy {svm['accuracy']:.3f}, "
                   f"mean per-class {svm['mean_per_class_accuracy']:.3f}")
    results = {"method": "CNN (from scratch)", **scores, "y_true": y_test.tolist(), "y_pred": predicted.tolist(),
               "n_train": len(train_images), "n_test": len(test_images),
               "read_train_seconds": read_train_seconds, "read_test_seconds": read_test_seconds,
               "train_seconds": train_seconds, "predict_seconds": predict_seconds,
               "predict_seconds_per_image": predict_seconds / max(len(test_images), 1),
               "stage_seconds": {"read_train": read_train_seconds, "read_test": read_test_seconds,
                                 "probe": budget["probe_seconds"],
                                 "train": train_seconds, "predict": predict_seconds,
                                 "cnn_features_svm": svm["train_seconds"]},
               "protocol": "15-Scene standard: 100 train images per class, the whole test folder as test; "
                           "settings never chosen on the test split (benchmarks/ablate_cnn.py validates them on "
                           "a split of train)",
               "epoch_seconds": history["seconds"], "history": history,
               "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
               "budget": budget, "skipped": train_errors + test_errors, "warnings": warnings,
               "environment": environment, "cnn_features_svm": svm}
    results["environment"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    results["seconds"] = time.perf_counter() - start_all
    if out is not None:
        ablation = Path(ablation) if ablation is not None else _ABLATION
        write_report(out, results, "CNN (from scratch)", _cnn_report(results, ablation))  # the numbers first
        clf.save_weights(out / "weights.pt")
        _save_curves(out, history)
    return results


def _cnn_report(r: dict, ablation: Path | None = None) -> list:
    """The CNN report's own sections (markdown lines); :func:`write_report` adds the summary and per-class table."""
    has_ablation = ablation is not None and Path(ablation).is_file() and Path(ablation).with_suffix(".json").is_file()
    s, h, svm, b = r["settings"], r["history"], r["cnn_features_svm"], r["budget"]
    held_out = not np.isnan(h["val_accuracy"]).all()
    lines = [
        f"{len(r['class_names'])} classes; torch {r['environment']['torch']} on {s['device']} "
        f"({r['environment']['cpus']} CPU cores, {s['n_threads']} torch thread(s): {b['n_threads_rule']}), "
        f"load average {r['environment']['load_average']} at the start and "
        f"{r['environment']['load_average_end']} at the end (timings include whatever else ran).", "",
        "| method | mean per-class accuracy | accuracy | training time | prediction time per image |",
        "| --- | --- | --- | --- | --- |",
        f"| CNN | {_percent(r['mean_per_class_accuracy'])} | {_percent(r['accuracy'])} | {r['train_seconds']:.0f} s | "
        f"{r['predict_seconds_per_image'] * 1e3:.2f} ms |",
        f"| CNN features + linear SVM (C={svm['C']:g}, 5-fold CV on train) | "
        f"{_percent(svm['mean_per_class_accuracy'])} | {_percent(svm['accuracy'])} | + {svm['train_seconds']:.0f} s | "
        f"{svm['predict_seconds_per_image'] * 1e3:.2f} ms |",
        "",
        f"The whole run took {r['seconds']:.0f} s. The SVM's cross-validation accuracy on the training split "
        f"({svm['cv_accuracy']:.1%}) is optimistic: the CNN was trained on those images, so their features fit it "
        "better than unseen ones.", "",
        (f"Held-out part: {s['val_fraction']:.0%} of the training split (stratified), not trained on. "
         if held_out else "All training images were trained on. ")
        + ("The settings were chosen on a validation split of the training images (the ablation below); "
           if has_ablation else
           "No ablation has been run (`benchmarks/ablate_cnn.py`): the settings are choices from the literature "
           "sized by a throughput measurement, not validated; ")
        + "the test split is used only for the numbers above.", "",
        "## Network and training", "",
        f"{s['architecture']} network, widths {'-'.join(map(str, s['channels']))}, {s['blocks']} block(s) per stage, "
        f"{s['image_size']} px input; {s['optimizer']} (peak lr {s['lr']:g}, weight decay {s['weight_decay']:g}), "
        f"{s['schedule']} schedule with {s['warmup_epochs']} warm-up epoch(s), batch {s['batch_size']}, label "
        f"smoothing {s['label_smoothing']:g}, mixup {s['mixup']:g}; augmentation: random resized crops "
        f"{s['crop_scale']}, rotation up to {s['rotation']:g} degrees, mirror, brightness/contrast {s['jitter']:g}; "
        f"test-time views: {s['tta']} at {s.get('test_size') or s['image_size']} px; training arithmetic "
        f"{s.get('precision_used', 'float32')}.", ""]
    if b["max_seconds"] is None:
        lines += [f"No time budget: {s['epochs']} epochs.", ""]
    else:
        first = ", ".join(f"{t:.1f}" for t in h["seconds"][:2])
        lines += [f"Time budget {b['max_seconds']:.0f} s for the whole run: {b['elapsed_before_training']:.0f} s went "
                  f"to reading and the probe ({b['probe_seconds']:.0f} s), {b['reserve_seconds']:.0f} s were kept for prediction and the SVM, so "
                  f"training got {b['train_max_seconds']:.0f} s. After the first epochs ({first} s) "
                  f"{s['epochs_planned']} epochs were planned (at most {s['max_epochs']}); {s['epochs']} ran"
                  + (f" (stopped by the budget before the schedule's end: `bench cnn --epochs {s['epochs_planned']} "
                     f"--max-seconds 0 --threads {s['n_threads']}` runs the same schedule to its end)."
                     if s["stopped_early"] else
                     f". To repeat the run exactly: `bench cnn --epochs {s['epochs_planned']} --max-seconds 0 "
                     f"--threads {s['n_threads']}` (the same seed)."), ""]
    lines += [
        f"Mean epoch time {np.mean(h['seconds']):.1f} s (min {np.min(h['seconds']):.1f}, "
        f"max {np.max(h['seconds']):.1f})" + (f"; final held-out accuracy {h['val_accuracy'][-1]:.1%}." if held_out
                                              else "."), "",
        "| epoch | loss | train acc (augmented) | held-out acc | lr | seconds |",
        "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {i + 1} | {h['loss'][i]:.3f} | {h['train_accuracy'][i]:.3f} | {h['val_accuracy'][i]:.3f} | "
              f"{h['lr'][i]:.4f} | {h['seconds'][i]:.1f} |" for i in range(len(h["loss"]))]
    lines += ["", "![training curves](training_curves.png)"]
    if has_ablation:
        text = Path(ablation).read_text().splitlines()
        lines += ["", f"## Ablation (from `{Path(ablation).name}`)", ""]
        lines += [("#" + line) if line.startswith("#") else line for line in text[1:]]
    return lines


def _percent(value) -> str:
    return value if isinstance(value, str) else f"{value:.1%}"
