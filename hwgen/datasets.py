"""Data sets: the digits of scikit-learn as a fixed split, and users' own images (`load_dataset`).

`load_digits_split()` is the one split every table, test and checkpoint in hwgen is measured on:
8x8 grey images as float32 `(N, 1, 8, 8)` in [0, 1] (pixel / 16), int64 labels, 80/20 stratified
with a fixed seed, so the numbers in the README can be reproduced on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import HwgenError

SPLIT_SEED = 0
TEST_FRACTION = 0.2
PIXEL_MAX = 16.0  # load_digits pixels are integers 0..16
INPUT_SHAPE = (1, 8, 8)
NUM_CLASSES = 10


@lru_cache(maxsize=1)
def _split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / np.float32(PIXEL_MAX)).reshape(-1, *INPUT_SHAPE)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y)
    for a in (x_tr, x_te, y_tr, y_te):
        a.setflags(write=False)  # shared by the cache: callers copy before mutating
    return x_tr, y_tr, x_te, y_te


def load_digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): float32 (N, 1, 8, 8) in [0, 1] and int64 labels."""
    return tuple(a.copy() for a in _split())


# -- users' data sets --------------------------------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
TEST_DIRS = ("test", "val")


@dataclass(frozen=True)
class Dataset:
    """A train/test split of float32 images `(N, C, H, W)` in [0, 1] and int64 labels, with class names."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.x_train, self.y_train, self.x_test, self.y_test


def upscale(x: np.ndarray, side: int) -> np.ndarray:
    """(N, C, h, h) -> (N, C, side, side) by repeating pixels; `side` must be a multiple of h."""
    h = x.shape[-1]
    if side % h:
        raise HwgenError(f"cannot upscale {h}x{h} images to {side}x{side} (not a whole multiple)")
    f = side // h
    return np.ascontiguousarray(x.repeat(f, axis=2).repeat(f, axis=3))


def digits_dataset(side: int = INPUT_SHAPE[-1]) -> Dataset:
    """The digits split (`load_digits_split`), upscaled to `side` x `side` by pixel repetition."""
    x_tr, y_tr, x_te, y_te = load_digits_split()
    return Dataset(upscale(x_tr, side), y_tr, upscale(x_te, side), y_te, tuple(str(k) for k in range(NUM_CLASSES)))


def _stratified_split(x: np.ndarray, y: np.ndarray, where: str) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y)
    if counts.min() < 2:
        raise HwgenError(f"{where}: class {int(counts.argmin())} has {counts.min()} example(s); at least 2 are "
                         "needed to split it into train and test (or give x_test / y_test)")
    return tuple(train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y))


def _check_labels(y, n: int, where: str, what: str, num_classes: int | None = None) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise HwgenError(f"{where}: {what} must be a 1-d array of integer class labels, got {y.dtype} {y.shape}")
    if len(y) != n:
        raise HwgenError(f"{where}: {what} has {len(y)} labels for {n} images")
    if n == 0:
        raise HwgenError(f"{where}: {what} is empty")
    if y.min() < 0 or (num_classes is not None and y.max() >= num_classes):
        raise HwgenError(f"{where}: {what} holds labels outside 0..{(num_classes or 1) - 1}: "
                         f"[{int(y.min())}, {int(y.max())}]")
    return y.astype(np.int64)


def _check_images(x, where: str, what: str, channels: int | None, side: int | None) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.dtype.kind not in "fiu":
        raise HwgenError(f"{where}: {what} must be images (N, C, H, W) or (N, H, W), got {x.dtype} {x.shape}")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / np.float32(255)
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise HwgenError(f"{where}: {what} contains NaN or infinite values")
    if channels is not None and x.shape[1] != channels or side is not None and x.shape[2:] != (side, side):
        raise HwgenError(f"{where}: {what} images are {x.shape[1:]}, the model takes "
                         f"({channels}, {side}, {side})")
    return x


def _load_npz(path: Path, channels: int | None, side: int | None) -> Dataset:
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise HwgenError(f"{path}: not a readable .npz of arrays ({e})") from None
    if "x" not in arrays or "y" not in arrays:
        raise HwgenError(f"{path}: expected arrays 'x' and 'y' (and optionally 'x_test', 'y_test'), "
                         f"found {', '.join(sorted(arrays)) or 'none'}")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise HwgenError(f"{path}: 'x_test' and 'y_test' go together")
    x = _check_images(arrays["x"], path, "x", channels, side)
    y = _check_labels(arrays["y"], len(x), path, "y")
    classes = int(y.max()) + 1
    empty = [k for k in range(classes) if not (y == k).any()]
    if empty:
        raise HwgenError(f"{path}: class {empty[0]} has no training images (labels must be 0..K-1, each used)")
    if "x_test" in arrays:
        x_te = _check_images(arrays["x_test"], path, "x_test", x.shape[1], x.shape[2])
        y_te = _check_labels(arrays["y_test"], len(x_te), path, "y_test", classes)
        return Dataset(x, y, x_te, y_te, tuple(str(k) for k in range(classes)))
    x_tr, x_te, y_tr, y_te = _stratified_split(x, y, str(path))
    return Dataset(x_tr, y_tr, x_te, y_te, tuple(str(k) for k in range(classes)))


def _class_dirs(root: Path) -> list[Path]:
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    stray = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not dirs or stray:
        raise HwgenError(f"{root}: expected one sub-folder of images per class (ImageFolder layout)"
                         + (f"; found images outside class folders ({stray[0]}, ...)" if stray else
                            "; found no sub-folders"))
    return dirs


def _read_image(path: Path, channels: int, side: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if im.size != (side, side):
                im = im.resize((side, side), Image.Resampling.BILINEAR)
            a = np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise HwgenError(f"{path}: not a readable image ({e})") from None
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _load_folder(root: Path, channels: int, side: int, classes: list[str] | None = None):
    dirs = _class_dirs(root)
    names = [d.name for d in dirs]
    if classes is not None and names != classes:
        raise HwgenError(f"{root}: classes {names} do not match the training classes {classes}")
    xs, ys = [], []
    for k, d in enumerate(dirs):
        files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise HwgenError(f"{d}: class '{d.name}' has no images ({', '.join(IMAGE_SUFFIXES)})")
        xs += [_read_image(p, channels, side) for p in files]
        ys += [k] * len(files)
    x = np.stack(xs).astype(np.float32) / np.float32(255)
    return x, np.array(ys, dtype=np.int64), names


def load_dataset(path, channels: int | None = None, side: int | None = None) -> Dataset:
    """A user's data set: an `.npz` with `x` / `y` (optionally `x_test` / `y_test`), or a folder of class
    sub-folders of images (ImageFolder), optionally split into `train/` and `test/` (or `val/`).

    Folder images are converted to `channels` (1: grey, else RGB) and resized to `side` x `side`;
    `.npz` images must already have that shape when given (uint8 is scaled by 1/255). Without a
    test part, the data are split 80/20, stratified, with the fixed seed of the digits split.
    """
    path = Path(path)
    if path.is_dir():
        if side is None:
            raise HwgenError(f"{path}: an image folder needs the model's input size")
        channels = channels or 3
        if (path / "train").is_dir():
            test = next((path / t for t in TEST_DIRS if (path / t).is_dir()), None)
            if test is None:
                raise HwgenError(f"{path}: has train/ but no test/ or val/ folder")
            x_tr, y_tr, classes = _load_folder(path / "train", channels, side)
            x_te, y_te, _ = _load_folder(test, channels, side, classes)
            return Dataset(x_tr, y_tr, x_te, y_te, tuple(classes))
        x, y, classes = _load_folder(path, channels, side)
        x_tr, x_te, y_tr, y_te = _stratified_split(x, y, str(path))
        return Dataset(x_tr, y_tr, x_te, y_te, tuple(classes))
    if path.suffix.lower() == ".npz" and path.is_file():
        return _load_npz(path, channels, side)
    raise HwgenError(f"{path}: no such data set (expected a folder of class sub-folders or an .npz with x and y)")
