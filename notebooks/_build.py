"""Write the tutorial notebooks from the Python source cells below (run from anywhere).

Usage::

    python notebooks/_build.py            # write the .ipynb files (without outputs)
    python notebooks/_build.py --execute  # write them, execute them with nbclient, save outputs
    python notebooks/_build.py --execute 05_what_the_cnn_learned.ipynb   # just one

Edit the cells here, not in the .ipynb files: each notebook is a list of ``md(...)`` (markdown)
and ``code(...)`` (Python) cells. The executed notebooks are committed with their outputs;
tests/test_notebooks.py re-executes them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def md(text):
    return new_markdown_cell(text.strip())


def code(text):
    return new_code_cell(text.strip())


SETUP = """\
%matplotlib inline
import numpy as np
import matplotlib.pyplot as plt
plt.rcParams["figure.dpi"] = 80"""

# --------------------------------------------------------------------------------------------
FILTERS = [
    md("""
# 1. Filters and gradients

Two ways to estimate the image gradient: the 3x3 **Sobel** operator and the **derivative of a
Gaussian** (DoG). Both are separable: smooth along one axis, differentiate along the other.
We compare their outputs on scikit-image's `camera`, turn the gradient into magnitude and
orientation (`arctan2(gy, gx)`, y pointing down), and look at what each filter does to
frequencies.
"""),
    code(SETUP + """
from skimage import data
from classicvision import as_float_image
from classicvision.features.filters import (sobel, gaussian_gradient, magnitude_orientation,
                                   gaussian_kernel1d, gaussian_derivative_kernel1d)

image = as_float_image(data.camera())
image.shape, image.dtype"""),
    md("## Sobel vs derivative of Gaussian"),
    code("""
sigma = 2.0
gx_sobel, gy_sobel = sobel(image)
gx_dog, gy_dog = gaussian_gradient(image, sigma=sigma)

fig, axes = plt.subplots(2, 2, figsize=(7, 7))
panels = [(gx_sobel, "Sobel gx"), (gy_sobel, "Sobel gy"),
          (gx_dog, f"DoG gx (sigma={sigma})"), (gy_dog, f"DoG gy (sigma={sigma})")]
for ax, (g, title) in zip(axes.ravel(), panels):
    limit = np.percentile(np.abs(g), 99)
    ax.imshow(g, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title(title)
    ax.axis("off")
plt.tight_layout()"""),
    md("""
Sobel keeps the fine texture of the grass and the coat; the derivative of Gaussian, averaging
over a few pixels, keeps the outline of the man and the camera and suppresses the noise.
"""),
    md("""
## Magnitude and orientation

Orientation is `arctan2(gy, gx)` in radians, drawn as hue (red = pointing right, +x); the
brightness is the gradient magnitude.
"""),
    code("""
def orientation_picture(gx, gy):
    magnitude, orientation = magnitude_orientation(gx, gy)
    hue = (orientation + np.pi) / (2 * np.pi)
    value = np.clip(magnitude / np.percentile(magnitude, 99), 0, 1)
    hsv = np.dstack([hue, np.ones_like(hue), value])
    return magnitude, plt.matplotlib.colors.hsv_to_rgb(hsv)

magnitude_sobel, colour_sobel = orientation_picture(gx_sobel, gy_sobel)
magnitude_dog, colour_dog = orientation_picture(gx_dog, gy_dog)

fig, axes = plt.subplots(2, 2, figsize=(7, 7))
axes[0, 0].imshow(magnitude_sobel, cmap="gray", vmax=np.percentile(magnitude_sobel, 99))
axes[0, 0].set_title("Sobel magnitude")
axes[0, 1].imshow(colour_sobel)
axes[0, 1].set_title("Sobel orientation (hue)")
axes[1, 0].imshow(magnitude_dog, cmap="gray", vmax=np.percentile(magnitude_dog, 99))
axes[1, 0].set_title("DoG magnitude")
axes[1, 1].imshow(colour_dog)
axes[1, 1].set_title("DoG orientation (hue)")
for ax in axes.ravel():
    ax.axis("off")
plt.tight_layout()"""),
    code("""
# The hue wheel used above: orientation of the vector (x, y) with y pointing down.
y, x = np.mgrid[-1:1:101j, -1:1:101j]
wheel = np.dstack([(np.arctan2(y, x) + np.pi) / (2 * np.pi), np.ones_like(x),
                   np.clip(np.hypot(x, y), 0, 1) * (np.hypot(x, y) <= 1)])
plt.figure(figsize=(2.5, 2.5))
plt.imshow(plt.matplotlib.colors.hsv_to_rgb(wheel), extent=(-1, 1, 1, -1))
plt.xlabel("gx"); plt.ylabel("gy (down)"); plt.title("orientation key");"""),
    md("""
## What the filters do to frequencies

The Sobel x kernel is recovered as the response of `sobel` to a unit impulse (no kernel is
typed in); the derivative-of-Gaussian x kernel is the outer product of the 1-D kernels
`gaussian_kernel1d` (along y) and `gaussian_derivative_kernel1d` (along x). Both are zero-padded
to 64x64 and transformed with `np.fft.fft2`; the plots show `|FFT|` with zero frequency at the
centre.
"""),
    code("""
n_fft = 64
impulse = np.zeros((n_fft, n_fft), np.float32)
impulse[n_fft // 2, n_fft // 2] = 1.0
kernel_sobel, _ = sobel(impulse, mode="constant")          # Sobel's impulse response
kernel_dog = np.outer(gaussian_kernel1d(sigma), gaussian_derivative_kernel1d(sigma))
kernel_sobel[np.abs(kernel_sobel) > 0].size, kernel_dog.shape"""),
    code("""
spectrum_sobel = np.abs(np.fft.fftshift(np.fft.fft2(kernel_sobel, s=(n_fft, n_fft))))
spectrum_dog = np.abs(np.fft.fftshift(np.fft.fft2(kernel_dog, s=(n_fft, n_fft))))
frequencies = np.fft.fftshift(np.fft.fftfreq(n_fft))          # cycles per pixel
extent = (frequencies[0], frequencies[-1], frequencies[-1], frequencies[0])

fig, axes = plt.subplots(1, 3, figsize=(14, 4))
axes[0].imshow(spectrum_sobel, extent=extent, cmap="magma")
axes[0].set_title("|FFT| Sobel x")
axes[1].imshow(spectrum_dog, extent=extent, cmap="magma")
axes[1].set_title(f"|FFT| derivative of Gaussian x (sigma={sigma})")
for ax in axes[:2]:
    ax.set_xlabel("u (cycles/px)"); ax.set_ylabel("v (cycles/px)")
centre = n_fft // 2
axes[2].plot(frequencies, spectrum_sobel[centre] / spectrum_sobel[centre].max(), label="Sobel")
axes[2].plot(frequencies, spectrum_dog[centre] / spectrum_dog[centre].max(), label="DoG")
axes[2].plot(frequencies, np.abs(np.sin(2 * np.pi * frequencies)), "k:", label="|sin(2 pi u)|")
axes[2].set_xlabel("u (cycles/px), v = 0"); axes[2].set_title("horizontal slice, normalized")
axes[2].legend()
plt.tight_layout()"""),
    md("""
Both are band-pass along x (zero at u = 0: a constant image has no gradient). Sobel follows
`|sin(2 pi u)|` (a central difference): it peaks at a quarter of the sampling rate and passes
most of the high frequencies where noise lives, and its 1-2-1 smoothing barely narrows it
along v. The derivative of Gaussian peaks at
`u = 1 / (2 pi sigma)` and falls to almost nothing beyond: a cleaner, tunable band-pass.
"""),
]

# --------------------------------------------------------------------------------------------
HARRIS_SIFT = [
    md("""
# 2. Harris corners and SIFT descriptors

Harris (1988) scores every pixel by `det(M) - k trace(M)**2` of the smoothed structure tensor;
interest points are its local maxima. SIFT (Lowe 2004, section 6) describes the patch around
each point by 4x4 cells of 8-bin gradient-orientation histograms (128 values), normalized,
clipped at 0.2 and renormalized.
"""),
    code(SETUP + """
from skimage import data
from classicvision import as_float_image
from classicvision.features.harris import harris_response, harris
from classicvision.features.sift import sift_descriptors
from classicvision.viz import plot_descriptors

image = as_float_image(data.camera())"""),
    md("## Response map and detected points"),
    code("""
response = harris_response(image, k=0.04, sigma=1.0)
keypoints = harris(image, k=0.04, sigma=1.0, threshold_rel=0.001, max_points=300)
points, responses = keypoints.points, keypoints.response
points.shape, points.dtype, responses[:3]"""),
    code("""
fig, axes = plt.subplots(1, 2, figsize=(12, 6))
limit = np.percentile(np.abs(response), 99.5)
shown = axes[0].imshow(response, cmap="RdBu_r", vmin=-limit, vmax=limit)
axes[0].set_title("Harris response (red: corner, blue: edge)")
fig.colorbar(shown, ax=axes[0], fraction=0.046)
axes[1].imshow(image, cmap="gray")
axes[1].scatter(points[:, 0], points[:, 1], s=12, c="yellow", edgecolors="k", linewidths=0.5)
axes[1].set_title(f"{len(points)} strongest Harris points (x, y)")
for ax in axes:
    ax.axis("off")
plt.tight_layout()"""),
    md("## Descriptors as an image (one row per point)"),
    code("""
descriptors = sift_descriptors(image, points)
fig, ax = plt.subplots(figsize=(10, 4))
plot_descriptors(descriptors[:60], ax=ax, title="SIFT descriptors of the 60 strongest points")
descriptors.shape, np.linalg.norm(descriptors, axis=1)[:3]"""),
    code("""
# One descriptor as its 4x4 cells of 8 orientations (layout: orientation fastest, then x cell, then y cell).
cells = descriptors[0].reshape(4, 4, 8)
fig, axes = plt.subplots(4, 4, figsize=(6, 6), sharey=True)
for (row, col), ax in np.ndenumerate(axes):
    ax.bar(np.arange(8), cells[row, col])
    ax.set_xticks([])
fig.suptitle(f"point 0 at (x, y) = {tuple(points[0])}")
plt.tight_layout()"""),
    md("""
## The 0.2 clip

After L2 normalization, Lowe clips every value at 0.2 and renormalizes, so a few large
gradients (e.g. from a lighting change) cannot dominate. Compare the distribution of values
with `clip=0.2` and without clipping (`clip=1.0` changes nothing for unit vectors).
"""),
    code("""
clipped = sift_descriptors(image, points, clip=0.2)
unclipped = sift_descriptors(image, points, clip=1.0)

bins = np.linspace(0, unclipped.max(), 60)
plt.figure(figsize=(8, 4))
plt.hist(unclipped.ravel(), bins=bins, alpha=0.6, label="clip=1.0 (no clip)", log=True)
plt.hist(clipped.ravel(), bins=bins, alpha=0.6, label="clip=0.2", log=True)
plt.axvline(0.2, color="k", ls=":")
plt.xlabel("descriptor value"); plt.ylabel("count (log)"); plt.legend()
print(f"largest value: {unclipped.max():.3f} unclipped, {clipped.max():.3f} clipped")"""),
    md("""
Clipping flattens the tail: values above 0.2 are cut to 0.2, and the renormalization lifts
them to a pile around 0.2-0.3 instead of a tail reaching 0.6; relatively more weight goes to
the many medium-sized bins, i.e. to the distribution of orientations rather than to a few
strong edges.

## Trilinear binning: a smooth descriptor

Each gradient sample votes into the two nearest orientation bins and the 2x2 nearest spatial
cells with weights that fall off linearly (Lowe 2004, section 6.1). So moving the point by a
fraction of a pixel changes the descriptor a little, continuously, instead of making samples
jump between cells.
"""),
    code("""
point = points[:1]
shifts = np.linspace(0.0, 4.0, 81)                     # pixels along x
shifted = np.concatenate([point + [shift, 0.0] for shift in shifts]).astype(np.float32)
moving = sift_descriptors(image, shifted)
distance = np.linalg.norm(moving - moving[0], axis=1)

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].plot(shifts, distance, ".-")
axes[0].set_xlabel("shift along x (px)"); axes[0].set_ylabel("|d(shift) - d(0)|")
axes[0].set_title("descriptor distance vs sub-pixel shift")
for k in np.argsort(moving.var(axis=0))[-5:]:
    axes[1].plot(shifts, moving[:, k], label=f"dim {k}")
axes[1].set_xlabel("shift along x (px)"); axes[1].set_title("the 5 most changing dimensions")
axes[1].legend(fontsize=8)
plt.tight_layout()"""),
    md("""
The distance grows continuously from zero with the shift, and each dimension changes
piecewise linearly (the kinks at whole-pixel shifts come from interpolating between pixel
samples): there are no jumps at pixel or cell boundaries. That smoothness is what makes nearest-neighbour
matching tolerant of small localization errors.
"""),
]

# --------------------------------------------------------------------------------------------
MATCHING = [
    md("""
# 3. Matching with the ratio test

For every descriptor of image 1, find its nearest and second-nearest neighbours in image 2;
keep the match when `d1 / d2 <= max_ratio` (Lowe 2004, section 7.1). We score matches with
ground truth: the disparity map of Middlebury's motorcycle stereo pair (embedded in
scikit-image, no download), and where the course data exists, the hand-clicked
correspondences of Notre Dame.
"""),
    code(SETUP + """
from classicvision.datasets import stereo_pair, find_data_dir, load_pair
from classicvision.features.extract import detect_and_describe
from classicvision.matching import match_images, match_descriptors
from classicvision.matching.evaluation import disparity_check, ground_truth_correct
from classicvision.viz import plot_matches"""),
    md("## Motorcycle stereo pair"),
    code("""
left, right, disparity = stereo_pair()
result = match_images(left, right, max_ratio=0.8)  # DoG keypoints, orientations, RootSIFT
correct, known = disparity_check(result.points1, result.points2, result.matches, disparity, tolerance=2.0)
print(f"{len(result.matches)} matches, {known.sum()} with known disparity, "
      f"accuracy {correct[known].mean():.1%}")
{name: round(s, 2) for name, s in result.seconds.items()}"""),
    code("""
top = 150
fig, ax = plt.subplots(figsize=(14, 5))
plot_matches(left, right, result.points1, result.points2, result.matches[:top],
             correct=correct[:top], ax=ax)
ax.set_title(f"{top} most confident matches: green correct (within 2 px of the disparity), red wrong");"""),
    md("""
## Why the default detector is DoG

`match_images` uses DoG keypoints with dominant orientations by default. Upright Harris corners
(`detector="harris"`, the course's baseline and the fastest) are one keyword away, but they are
neither scale- nor rotation-invariant: on the bundled `camera` image turned by 90 degrees, with
the exact truth of the known warp, only DoG still matches.
"""),
    code("""
import cv2
from classicvision.matching.evaluation import homography_accuracy

from skimage import data as skdata
camera = skdata.camera().astype(np.float32) / 255
turned = np.ascontiguousarray(np.rot90(camera))
H = np.array([[0, 1, 0], [-1, 0, camera.shape[1] - 1], [0, 0, 1]], float)   # (x, y) -> (y, W - 1 - x)
for detector in ("dog", "harris"):
    r = match_images(camera, turned, detector=detector)
    print(f"{detector:6s}: {len(r.matches):5d} matches, top-100 correct within 3 px: "
          f"{homography_accuracy(r.points1, r.points2, r.matches[:100], H):.0%}, {r.seconds['total']:.2f} s")"""),
    md("""
## Precision vs ratio threshold

A lower `max_ratio` keeps fewer, more distinctive matches. We describe the two images once and
re-run the ratio test for a range of thresholds.
"""),
    code("""
keypoints1, descriptors1 = detect_and_describe(left)
keypoints2, descriptors2 = detect_and_describe(right)
points1, points2 = keypoints1.points, keypoints2.points
thresholds = np.linspace(0.3, 1.0, 15)

def precision_curve(score):
    accuracy, count = [], []
    for max_ratio in thresholds:
        matches, _ = match_descriptors(descriptors1, descriptors2, max_ratio=max_ratio)
        good, counted = score(matches)
        accuracy.append(good[counted].mean() if counted.any() else np.nan)
        count.append(counted.sum())
    return np.array(accuracy), np.array(count)

stereo_accuracy, stereo_count = precision_curve(
    lambda m: disparity_check(points1, points2, m, disparity, tolerance=2.0))"""),
    code("""
def plot_curve(accuracy, count, title):
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(thresholds, accuracy, "o-", color="C0")
    ax.set_xlabel("max_ratio"); ax.set_ylabel("accuracy", color="C0"); ax.set_ylim(0, 1.02)
    counts_ax = ax.twinx()
    counts_ax.plot(thresholds, count, "s--", color="C1")
    counts_ax.set_ylabel("matches scored", color="C1")
    ax.set_title(title)

plot_curve(stereo_accuracy, stereo_count, "Motorcycle: accuracy vs ratio threshold")"""),
    md("""
## Notre Dame (course data, when present)

Scored with the course's criterion: the match's offset must be within 40 px (full resolution)
of the offset of the nearest hand-clicked correspondence. Images are matched at scale 0.5.
"""),
    code("""
data = find_data_dir()
has_pairs = data is not None and (data / "pairs" / "pairs.csv").is_file()
print("data folder:", data, "| pairs found" if has_pairs else "| no pairs: section skipped")"""),
    code("""
if has_pairs:
    scale = 0.5
    notre1, notre2, ground_truth = load_pair("notre_dame", root=data, scale=scale)
    notre = match_images(notre1, notre2)
    notre_correct = ground_truth_correct(notre.points1, notre.points2, notre.matches, ground_truth,
                                         scale=scale, tolerance=40.0)
    print(f"{len(notre.matches)} matches, top-100 accuracy {notre_correct[:100].mean():.1%}")
    fig, ax = plt.subplots(figsize=(14, 6))
    plot_matches(notre1, notre2, notre.points1, notre.points2, notre.matches[:100],
                 correct=notre_correct[:100], ax=ax)
    ax.set_title("Notre Dame: 100 most confident matches")"""),
    code("""
if has_pairs:
    keypoints1, descriptors1 = detect_and_describe(notre1)
    keypoints2, descriptors2 = detect_and_describe(notre2)
    points1, points2 = keypoints1.points, keypoints2.points
    notre_accuracy, notre_count = precision_curve(lambda m: (
        ground_truth_correct(points1, points2, m, ground_truth, scale=scale, tolerance=40.0),
        np.ones(len(m), bool)))
    plot_curve(notre_accuracy, notre_count, "Notre Dame: accuracy vs ratio threshold")"""),
]

# --------------------------------------------------------------------------------------------
SCENES = [
    md("""
# 4. Scene recognition: bag of words, Fisher vectors and a tiny CNN

Dense SIFT on a grid, a k-means codebook of visual words, a spatial-pyramid histogram per image
(Csurka 2004; Lazebnik 2006) and a linear SVM; the same descriptors encoded as improved Fisher
vectors (Perronnin et al. 2010); against a small CNN trained from scratch.
By default this runs on a **small** subset so it finishes in seconds: a few classes of the
15-Scene data set when it is present, else generated texture images. Set `FULL = True` for the
whole data set (minutes to hours). The last section shows the committed numbers of the full
15-Scene comparison (`classicvision bench compare`), all six methods measured in one run.
"""),
    code(SETUP + """
from sklearn.svm import LinearSVC
from sklearn.metrics import confusion_matrix, accuracy_score
from classicvision.datasets import find_data_dir, load_image_folder, read_images
from classicvision.recognition import DenseSIFT, BagOfWords
from classicvision.recognition.fisher import FisherVector
from classicvision.viz import plot_confusion_matrices

FULL = False
N_CLASSES, N_TRAIN, N_TEST = 4, 20, 10      # per class, used when FULL is False
rng = np.random.default_rng(0)"""),
    md("## Data"),
    code("""
data = find_data_dir()
scene_root = data / "scene15" if data is not None else None
has_scenes = scene_root is not None and (scene_root / "train").is_dir()

def take(paths, labels, per_class):
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(N_CLASSES)])
    return [paths[i] for i in keep], labels[keep]

if has_scenes:
    train_paths, train_labels, class_names = load_image_folder(scene_root, "train")
    test_paths, test_labels, _ = load_image_folder(scene_root, "test")
    if not FULL:
        class_names = class_names[:N_CLASSES]
        train_paths, train_labels = take(train_paths, train_labels, N_TRAIN)
        test_paths, test_labels = take(test_paths, test_labels, N_TEST)
    train_images, kept, _ = read_images(train_paths, scale=0.5)
    train_labels = train_labels[kept]
    test_images, kept, _ = read_images(test_paths, scale=0.5)
    test_labels = test_labels[kept]
    print("15-Scene:", ", ".join(class_names))"""),
    code("""
def texture(kind, size=128):
    # A random texture of one of four kinds: horizontal stripes, vertical stripes, blobs, checks.
    y, x = np.mgrid[:size, :size].astype(np.float32)
    period = rng.uniform(6, 14)
    phase = rng.uniform(0, 2 * np.pi)
    if kind == 0:
        picture = np.sin(2 * np.pi * y / period + phase)
    elif kind == 1:
        picture = np.sin(2 * np.pi * x / period + phase)
    elif kind == 2:
        noise = rng.standard_normal((size // 8, size // 8))
        picture = np.kron(noise, np.ones((8, 8)))
    else:
        picture = np.sign(np.sin(2 * np.pi * x / period + phase) * np.sin(2 * np.pi * y / period))
    picture = picture + 0.5 * rng.standard_normal((size, size))
    return ((picture - picture.min()) / np.ptp(picture)).astype(np.float32)

if not has_scenes:
    class_names = ["horizontal", "vertical", "blobs", "checks"][:N_CLASSES]
    train_labels = np.repeat(np.arange(N_CLASSES), N_TRAIN)
    test_labels = np.repeat(np.arange(N_CLASSES), N_TEST)
    train_images = [texture(c) for c in train_labels]
    test_images = [texture(c) for c in test_labels]
    print("15-Scene not found: generated textures:", ", ".join(class_names))
len(train_images), len(test_images)"""),
    code("""
fig, axes = plt.subplots(1, len(class_names), figsize=(3 * len(class_names), 3))
for c, ax in enumerate(axes):
    ax.imshow(train_images[np.flatnonzero(train_labels == c)[0]], cmap="gray")
    ax.set_title(class_names[c]); ax.axis("off")"""),
    md("## Dense SIFT and the codebook"),
    code("""
dense_sift = DenseSIFT(step=8, sizes=(16,))
train_features = dense_sift.fit_transform(train_images)
test_features = dense_sift.transform(test_images)
bag = BagOfWords(n_words=50, levels=2, random_state=0)
train_histograms = bag.fit_transform(train_features)
test_histograms = bag.transform(test_features)
train_histograms.shape, bag.codebook_.shape"""),
    md("""
**What is a visual word?** For a few words, the image patches (16x16, the descriptor's
support) whose descriptors are nearest to the word's centre.
"""),
    code("""
all_descriptors = np.concatenate([f.descriptors for f in train_features])
owner = np.concatenate([np.full(len(f.points), i) for i, f in enumerate(train_features)])
all_points = np.concatenate([f.points for f in train_features])
half = 8

def patch(i):
    x, y = np.round(all_points[i]).astype(int)
    padded = np.pad(train_images[owner[i]], half, mode="constant")
    return padded[y:y + 2 * half, x:x + 2 * half]

words = rng.choice(bag.n_words, size=6, replace=False)
n_patches = 8
fig, axes = plt.subplots(len(words), n_patches, figsize=(n_patches * 1.2, len(words) * 1.3))
for row, word in zip(axes, words):
    distance = np.linalg.norm(all_descriptors - bag.codebook_[word], axis=1)
    for ax, i in zip(row, np.argsort(distance)[:n_patches]):
        ax.imshow(patch(i), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([]); ax.set_yticks([])
    row[0].set_ylabel(f"word {word}")
plt.tight_layout()"""),
    md("""
## A bag-of-words histogram

The feature vector is level 0's histogram (the whole image) followed by the four cells of
level 1, each `n_words` long.
"""),
    code("""
example = 0
fig, ax = plt.subplots(figsize=(12, 3))
ax.bar(np.arange(train_histograms.shape[1]), train_histograms[example], width=1.0)
for level_edge in range(bag.n_words, train_histograms.shape[1], bag.n_words):
    ax.axvline(level_edge - 0.5, color="k", lw=0.5)
ax.set_xlabel("word (level 0 | four level-1 cells)")
ax.set_title(f"spatial-pyramid histogram of training image {example} ({class_names[train_labels[example]]})");"""),
    md("## Classifiers: linear SVMs on bags of words and on Fisher vectors, and a tiny CNN"),
    code("""
svm = LinearSVC(C=1.0).fit(train_histograms, train_labels)
bovw_predicted = svm.predict(test_histograms)
bovw_confusion = confusion_matrix(test_labels, bovw_predicted, labels=np.arange(len(class_names)))
print(f"bag of words + LinearSVC: accuracy {accuracy_score(test_labels, bovw_predicted):.1%}")"""),
    md("""
**Fisher vectors** describe an image by how its descriptors deviate from a Gaussian mixture
learned on the training descriptors (after a PCA): the gradient with respect to each Gaussian's
mean and variance, so `2 K D` numbers (plus 2 for the position augmentation) instead of `K`
counts, signed-square-rooted and L2-normalized. A mixture of 8 Gaussians is enough on this
small set; the full benchmark uses 256.
"""),
    code("""
fisher = FisherVector(n_components=8, n_pca=32, random_state=0)
train_fisher = fisher.fit_transform(train_features)
test_fisher = fisher.transform(test_features)
fisher_svm = LinearSVC(C=1.0).fit(train_fisher, train_labels)
fisher_predicted = fisher_svm.predict(test_fisher)
fisher_confusion = confusion_matrix(test_labels, fisher_predicted, labels=np.arange(len(class_names)))
print(f"Fisher vectors ({train_fisher.shape[1]} values per image) + LinearSVC: "
      f"accuracy {accuracy_score(test_labels, fisher_predicted):.1%}")"""),
    code("""
try:
    from classicvision.recognition.cnn import CNNClassifier
    import torch  # noqa: F401
    has_torch = True
except ImportError as error:
    has_torch = False
    print("torch is not installed, the CNN is skipped:", error)

cnn_confusion = None
if has_torch:
    cnn = CNNClassifier(epochs=30 if FULL else 15, batch_size=64 if FULL else 16, image_size=64,
                        channels=(32, 64, 128, 256) if FULL else (16, 32, 64),
                        val_fraction=0, random_state=0)
    cnn.fit(train_images, train_labels)
    cnn_predicted = cnn.predict(test_images)
    cnn_confusion = confusion_matrix(test_labels, cnn_predicted, labels=np.arange(len(class_names)))
    print(f"tiny CNN: accuracy {accuracy_score(test_labels, cnn_predicted):.1%}")"""),
    code("""
fig, axes = plt.subplots(1, 3, figsize=(18, 5))
plot_confusion_matrices([bovw_confusion, fisher_confusion], class_names, axes=axes,
                        titles=["bag of words + LinearSVC", "Fisher vectors + LinearSVC"])
if cnn_confusion is not None:
    plot_confusion_matrices([cnn_confusion], class_names, axes=axes[2:], titles=["tiny CNN"])
else:
    axes[2].text(0.5, 0.5, "CNN skipped (no torch)", ha="center", va="center")
    axes[2].axis("off")
plt.tight_layout()"""),
    md("""
With a few dozen training images per class these numbers are noisy (each test image is
2.5 % of the test set here): dense SIFT brings its features ready-made, while the CNN has to
learn them from the same few images. `FULL = True` (all classes, all training images, the
full-size network, more epochs) gives the comparison that matters; the next section shows it.
"""),
    md("""
## The full 15-Scene comparison

`classicvision bench compare --data ../shared/data --out DIR` measures six methods in one run
on the standard protocol (100 training images per class, the whole 2985-image test folder):
tiny images + k-NN, bag of words, VLAD, Fisher vectors, the CNN from scratch and CNN features +
a linear SVM. Its `results.json` is committed as `benchmarks/results/compare.json`; this section
reads that file (it does not rerun anything). Each score comes with its binomial standard error
`sqrt(p (1 - p) / n_test)`; the verdict under the table gives the margin between the two best
methods with its paired standard error (`classicvision.experiments.significance`).
"""),
    code("""
import json
from pathlib import Path
from IPython.display import Markdown, display
import classicvision

candidates = [Path.cwd().parent, Path(classicvision.__file__).resolve().parents[1]]
compare_file = next((root / "benchmarks" / "results" / "compare.json" for root in candidates
                     if (root / "benchmarks" / "results" / "compare.json").is_file()), None)
full = json.loads(compare_file.read_text()) if compare_file is not None else None
if full is None:
    print("benchmarks/results/compare.json is absent: no full 15-Scene comparison to show yet "
          "(write it from `classicvision bench compare --out DIR`: copy DIR/results.json there)")
else:
    def cell(p, se):
        return "n/a" if not isinstance(p, float) else f"{p:.1%} ± {100 * se:.1f}"

    lines = [f"{full['n_test']} test images; ± one binomial standard error, in points.", "",
             "| method | mean per-class accuracy | accuracy | training (s) | prediction per image (ms) |",
             "| --- | --- | --- | --- | --- |"]
    for row in full["rows"]:
        per_image = row["predict_seconds_per_image"]
        lines.append(f"| {row['method']} | {cell(row['mean_per_class_accuracy'], row['mean_per_class_accuracy_se'])} "
                     f"| {cell(row['accuracy'], row['accuracy_se'])} | {row['train_seconds']:.0f} | "
                     + ("n/a" if per_image is None else f"{1e3 * per_image:.1f}") + " |")
    lines += ["", full["summary"]]
    display(Markdown("\\n".join(lines)))"""),
    code("""
if full is not None:
    shown = [row for row in full["rows"] if row.get("confusion_matrix")]
    columns = 3
    rows_of_panels = -(-len(shown) // columns)
    fig, axes = plt.subplots(rows_of_panels, columns, figsize=(8 * columns, 8 * rows_of_panels), squeeze=False)
    plot_confusion_matrices([row["confusion_matrix"] for row in shown], shown[0]["class_names"],
                            axes=axes.ravel(), titles=[f"{row['method']}: mean per-class "
                                                       f"{row['mean_per_class_accuracy']:.1%}" for row in shown])
    for ax in axes.ravel()[len(shown):]:
        ax.axis("off")
    plt.tight_layout()"""),
]

# --------------------------------------------------------------------------------------------
CNN_LEARNED = [
    md("""
# 5. What the CNN learned

A look inside the network of `classicvision bench cnn`: its first-layer filters, the feature
maps of one image through the stages, where it looks for a class (Grad-CAM, Selvaraju et al.
2017) on test images it gets right and wrong, and its confusion matrix beside those of the
classical methods.

By default a **small** network is trained here for a few seconds on a few classes (of 15-Scene
when the data is present, else of generated textures), so the notebook runs in CI. To look at
the real one, run `classicvision bench cnn --out DIR` and set `CLASSICVISION_CNN_WEIGHTS=DIR/weights.pt`
before starting Jupyter: the notebook then loads those weights (safely: tensors only) and uses
the whole 15-Scene test split.
"""),
    code(SETUP + """
import json
import os
from pathlib import Path

from sklearn.metrics import confusion_matrix
import classicvision
from classicvision.datasets import find_data_dir, load_image_folder, read_images
from classicvision.recognition.cam import feature_maps, grad_cam
from classicvision.recognition.cnn import CNNClassifier, load_weights
from classicvision.viz import plot_confusion_matrix

WEIGHTS = os.environ.get("CLASSICVISION_CNN_WEIGHTS")
N_CLASSES, N_TRAIN, N_TEST = 4, 100, 25     # per class, for the small network trained here
rng = np.random.default_rng(0)"""),
    md("## Data and network"),
    code("""
data = find_data_dir()
scene_root = data / "scene15" if data is not None else None
has_scenes = scene_root is not None and (scene_root / "train").is_dir()

def take(paths, labels, per_class, n_classes):
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(n_classes)])
    return [paths[i] for i in keep], labels[keep]

def texture(kind, size=128):
    # Generated stand-ins for scenes: horizontal stripes, vertical stripes, blobs, checks.
    y, x = np.mgrid[:size, :size].astype(np.float32)
    period, phase = rng.uniform(6, 14), rng.uniform(0, 2 * np.pi)
    if kind == 0:
        picture = np.sin(2 * np.pi * y / period + phase)
    elif kind == 1:
        picture = np.sin(2 * np.pi * x / period + phase)
    elif kind == 2:
        picture = np.kron(rng.standard_normal((size // 8, size // 8)), np.ones((8, 8)))
    else:
        picture = np.sign(np.sin(2 * np.pi * x / period + phase) * np.sin(2 * np.pi * y / period))
    picture = picture + 0.5 * rng.standard_normal((size, size))
    return ((picture - picture.min()) / np.ptp(picture)).astype(np.float32)

if WEIGHTS and not has_scenes:
    raise FileNotFoundError("CLASSICVISION_CNN_WEIGHTS is set but 15-Scene was not found: set CLASSICVISION_DATA")
if has_scenes:
    train_paths, train_labels, class_names = load_image_folder(scene_root, "train")
    test_paths, test_labels, _ = load_image_folder(scene_root, "test")
    if not WEIGHTS:
        class_names = class_names[:N_CLASSES]
        train_paths, train_labels = take(train_paths, train_labels, N_TRAIN, N_CLASSES)
        test_paths, test_labels = take(test_paths, test_labels, N_TEST, N_CLASSES)
        train_images, kept, _ = read_images(train_paths, scale=0.5)
        train_labels = train_labels[kept]
    test_images, kept, _ = read_images(test_paths)
    test_labels = test_labels[kept]
    print("15-Scene:", ", ".join(class_names))
else:
    class_names = ["horizontal", "vertical", "blobs", "checks"][:N_CLASSES]
    train_labels = np.repeat(np.arange(N_CLASSES), N_TRAIN)
    test_labels = np.repeat(np.arange(N_CLASSES), N_TEST)
    train_images = [texture(c) for c in train_labels]
    test_images = [texture(c) for c in test_labels]
    print("15-Scene not found: generated textures:", ", ".join(class_names))"""),
    code("""
if WEIGHTS:
    cnn = load_weights(WEIGHTS)
    print(f"loaded {WEIGHTS}: {cnn.architecture}, widths {cnn.channels}, {cnn.image_size} px")
else:
    # the bench defaults, smaller and shorter: a ResNet of four stages on 64 px inputs, 20 epochs
    cnn = CNNClassifier(image_size=64, channels=(16, 32, 64, 128), epochs=20, batch_size=32, lr=0.05,
                        val_fraction=0, n_threads=1, device="cpu", random_state=0)
    cnn.fit(train_images, train_labels)
    print(f"trained {cnn.architecture}, widths {cnn.channels}, {cnn.image_size} px, "
          f"{len(cnn.history_['loss'])} epochs in {sum(cnn.history_['seconds']):.1f} s")
predicted = cnn.predict(test_images)
correct = predicted == test_labels
print(f"test accuracy {correct.mean():.1%} on {len(test_images)} images")"""),
    md("""
## First-layer filters

The 3x3 kernels of the first convolution (the ResNet's stride-2 stem), each scaled to its own
range (grey = 0). Trained from scratch on grey images, most become oriented edge and bar
detectors, the same derivatives that SIFT's gradients measure by design.
"""),
    code("""
model = cnn.model_
first = model.stem[0] if hasattr(model, "stem") else model.features[0]
kernels = first.weight.detach().cpu().numpy()[:, 0]          # (C, 3, 3)
columns = 8
rows = int(np.ceil(len(kernels) / columns))
fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.1))
for ax, kernel in zip(axes.ravel(), kernels):
    limit = np.abs(kernel).max() or 1.0
    ax.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
for ax in axes.ravel():
    ax.axis("off")
fig.suptitle(f"first layer: {len(kernels)} filters of 3x3 (red positive, blue negative)");"""),
    md("""
## Feature maps through the network

One test image, and for the stem and each stage the eight channels that respond most strongly
to it (mean activation). The maps halve in size stage by stage while the channels grow: early
maps keep edges, late ones mark where the parts of a class are.
"""),
    code("""
example = int(np.flatnonzero(correct)[0]) if correct.any() else 0
maps = feature_maps(cnn, [test_images[example]])
crop = cnn.network_inputs([test_images[example]])[0]
names = (["stem"] if hasattr(model, "stem") else []) + [f"stage {i + 1}" for i in range(len(cnn.channels))]
fig, axes = plt.subplots(len(maps), 9, figsize=(13, 1.6 * len(maps)))
for row, m, name in zip(axes, maps, names):
    m = m[0]
    strongest = np.argsort(m.mean(axis=(1, 2)))[::-1][:8]
    row[0].imshow(crop, cmap="gray")
    row[0].set_ylabel(f"{name}\\n{m.shape[0]} x {m.shape[1]}x{m.shape[2]}", fontsize=8)
    for ax, channel in zip(row[1:], strongest):
        ax.imshow(m[channel], cmap="viridis")
    for ax in row:
        ax.set_xticks([]); ax.set_yticks([])
axes[0, 0].set_title(class_names[test_labels[example]], fontsize=9)
fig.suptitle("network input, then the 8 strongest channels of the stem and of each stage");"""),
    md("""
## Grad-CAM: where the network looks

For the predicted class, Grad-CAM weights each channel of the last stage by the mean gradient
of the class score and keeps the positive part of the weighted sum (`grad_cam`); warm colours
mark the regions that raise the score. Top row: test images classified right; bottom row:
wrong (true -> predicted).
"""),
    code("""
def across_classes(mask, k=4):
    # up to k images where mask holds, taken from the classes in turn
    pools = [list(np.flatnonzero(mask & (test_labels == c))) for c in range(len(class_names))]
    chosen = []
    while len(chosen) < k and any(pools):
        for pool in pools:
            if pool and len(chosen) < k:
                chosen.append(pool.pop(0))
    return np.asarray(chosen, dtype=int)

right, wrong = across_classes(correct), across_classes(~correct)
fig, axes = plt.subplots(2, 4, figsize=(12, 6.4))
for row, chosen in zip(axes, (right, wrong)):
    if len(chosen):
        images = [test_images[i] for i in chosen]
        cams = grad_cam(cnn, images, target=predicted[chosen])
        crops = cnn.network_inputs(images)
    for k, ax in enumerate(row):
        ax.axis("off")
        if k >= len(chosen):
            continue
        i = chosen[k]
        ax.imshow(crops[k], cmap="gray")
        ax.imshow(cams[k] / (cams[k].max() or 1.0), cmap="jet", alpha=0.4)
        ax.set_title(f"{class_names[test_labels[i]]} -> {class_names[predicted[i]]}", fontsize=9)
axes[0, 0].text(-0.1, 0.5, "right", transform=axes[0, 0].transAxes, rotation=90, va="center", ha="right")
axes[1, 0].text(-0.1, 0.5, "wrong", transform=axes[1, 0].transAxes, rotation=90, va="center", ha="right")
print(f"{len(wrong)} wrong image(s) shown of {int((~correct).sum())}")"""),
    md("""
## Confusion matrices: the CNN beside the classical methods

The classical methods' matrices come from `benchmarks/results/compare.json` (the `results.json`
of `classicvision bench compare`, as notebook 04 reads it; `CLASSICVISION_COMPARE` names another
file) when this checkout has it.
Their classes are the 15 of the full data set, so they are comparable with the CNN's only when
the real weights are loaded.
"""),
    code("""
cnn_confusion = confusion_matrix(test_labels, predicted, labels=np.arange(len(class_names)))
candidates = [Path.cwd().parent, Path(classicvision.__file__).resolve().parents[1]]
compare = os.environ.get("CLASSICVISION_COMPARE") or next(
    (root / "benchmarks" / "results" / "compare.json" for root in candidates
     if (root / "benchmarks" / "results" / "compare.json").is_file()), None)
classical = {}
if compare is not None and Path(compare).is_file():
    results = json.loads(Path(compare).read_text())
    for row in results.get("rows", []):   # one row per method, as `bench compare` writes them
        if row.get("confusion_matrix") and row.get("class_names") and row.get("key") not in ("cnn", "cnn_svm"):
            classical[row["method"]] = row
    print(f"{Path(compare).name}: {', '.join(classical) or 'no classical confusion matrices found'}")
else:
    print("benchmarks/results/compare.json not found (`classicvision bench compare` writes it): "
          "showing the CNN's matrix alone")
panels = [("CNN (this network)", cnn_confusion, class_names)]
panels += [(name, np.asarray(row["confusion_matrix"]), row["class_names"]) for name, row in classical.items()]
columns = min(len(panels), 3)
fig, axes = plt.subplots(-(-len(panels) // columns), columns, figsize=(6.5 * columns, 6 * -(-len(panels) // columns)),
                         squeeze=False)
for ax, (name, matrix, names) in zip(axes.ravel(), panels):
    plot_confusion_matrix(matrix, names, ax=ax)
    ax.set_title(f"{name}: mean per-class {np.mean(np.diag(matrix) / np.maximum(matrix.sum(1), 1)):.1%}")
for ax in axes.ravel()[len(panels):]:
    ax.axis("off")
plt.tight_layout()"""),
    md("""
What to look for with the real weights: whether the CNN's errors fall in the same off-diagonal
cells as those of bag of words (on 15-Scene, mostly among the indoor classes and among the open
natural ones), or elsewhere, which would make the two worth combining. The small network trained
here by default sees a few classes and a hundred images of each, so its matrix shows the
method, not the result.
"""),
]

NOTEBOOKS = {
    "01_filters_and_gradients.ipynb": FILTERS,
    "02_harris_and_sift.ipynb": HARRIS_SIFT,
    "03_matching.ipynb": MATCHING,
    "04_scene_recognition.ipynb": SCENES,
    "05_what_the_cnn_learned.ipynb": CNN_LEARNED,
}


def build(name, cells):
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def execute(notebook, path, timeout=300):
    from nbclient import NotebookClient

    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return notebook


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", action="store_true", help="run each notebook and save its outputs")
    parser.add_argument("names", nargs="*", help="notebook files to build (default: all)")
    args = parser.parse_args(argv)
    for name, cells in NOTEBOOKS.items():
        if args.names and name not in args.names:
            continue
        path = HERE / name
        notebook = build(name, cells)
        if args.execute:
            start = time.perf_counter()
            execute(notebook, path)
            print(f"{name}: executed in {time.perf_counter() - start:.1f} s")
        nbformat.validate(notebook)
        nbformat.write(notebook, path)
        print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
