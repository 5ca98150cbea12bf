"""Image data sets for the example job, split deterministically between sites.

Two sources:

- scikit-learn's handwritten digits (1797 images, 1×8×8, ships with scikit-learn);
- CIFAR-10 in its standard *binary* format (``data_batch_1.bin`` … ``data_batch_5.bin``
  and ``test_batch.bin``: records of 1 label byte + 3072 pixel bytes, CHW). The
  python (pickle) version is deliberately not supported: we never unpickle files
  another party wrote.

Every site sees the same held-out test split; the training part is divided into
``num_sites`` disjoint shares by site index. The split depends only on the data
and :data:`SPLIT_SEED`, never on a site's own settings, so two sites configured
with different learner seeds still get disjoint shares.

Images are kept as ``uint8`` arrays (N×C×H×W) to save memory; multiplying by
:attr:`SiteData.scale` (or calling :meth:`SiteData.normalise`) gives float
pixels in [0, 1].
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Seed of the train/test split and of the division between sites.
SPLIT_SEED = 0
#: Share of the digits held out for testing (CIFAR-10 has its own test batch).
DIGITS_TEST_FRACTION = 0.2

DATASETS = ("digits", "cifar10")

CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch.bin"
CIFAR10_RECORD_BYTES = 1 + 3 * 32 * 32
CIFAR10_FOLDER_NAME = "cifar-10-batches-bin"
_CIFAR10_EXPECTED = "data_batch_1.bin … data_batch_5.bin and test_batch.bin"
_CIFAR10_SOURCE = (
    "download the 'CIFAR-10 binary version' (cifar-10-binary.tar.gz) from "
    "https://www.cs.toronto.edu/~kriz/cifar.html and extract it"
)


class DatasetFilesError(FileNotFoundError):
    """A data set's files are missing, truncated or not in the expected format."""


@dataclass(frozen=True)
class SiteData:
    """One site's share of the training data plus the held-out split all sites share.

    ``x_*`` are ``uint8`` images, N×C×H×W; ``x * scale`` is in [0, 1].
    ``y_*`` are ``int64`` class labels in ``range(num_classes)``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    scale: float
    num_classes: int = 10

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """``x`` as float32 pixels in [0, 1]."""
        return x.astype(np.float32) * np.float32(self.scale)


def site_index_from_name(site_name: str) -> int:
    """The 0-based index a site name ends in: ``"site-3"`` → 2.

    Raises ValueError for a name without a trailing number ≥ 1.
    """
    match = re.search(r"(\d+)$", site_name)
    if match is None or int(match.group(1)) < 1:
        raise ValueError(
            f"cannot derive a site index from site name {site_name!r}: expected a name "
            "ending in a number from 1 (such as 'site-1'); set 'site_index' in the "
            "learner's args instead"
        )
    return int(match.group(1)) - 1


def stratified_test_split(
    labels: np.ndarray, test_fraction: float, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)``: each class contributes ``test_fraction`` of its items to test.

    Deterministic for a given ``labels`` and ``seed``; both results are sorted.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(seed)
    test_parts = []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        test_parts.append(members[: int(round(len(members) * test_fraction))])
    test = np.sort(np.concatenate(test_parts))
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train, test


def site_share(
    labels: np.ndarray, num_sites: int, site_index: int, seed: int = SPLIT_SEED
) -> np.ndarray:
    """Sorted positions in ``labels`` that belong to site ``site_index`` of ``num_sites``.

    Items are grouped by class, shuffled within each class, and dealt out
    round-robin, so shares are disjoint, together cover every item, differ in
    size by at most one, and hold each class in about the same proportion.
    """
    _check_share(num_sites, site_index)
    return np.sort(deal_order(labels, seed)[site_index::num_sites])


def deal_order(labels: np.ndarray, seed: int = SPLIT_SEED) -> np.ndarray:
    """Positions in ``labels`` in the order :func:`site_share` deals them out: grouped by
    class, shuffled within each class. Share ``i`` of ``n`` is every ``n``-th from ``i``."""
    rng = np.random.default_rng([seed, 1])
    return np.concatenate(
        [rng.permutation(np.flatnonzero(labels == cls)) for cls in np.unique(labels)]
    )


def _check_share(num_sites: int, site_index: int) -> None:
    if num_sites < 1:
        raise ValueError(f"num_sites must be at least 1, got {num_sites}")
    if not 0 <= site_index < num_sites:
        raise ValueError(
            f"site index {site_index} is outside 0..{num_sites - 1} for num_sites={num_sites}; "
            "raise 'num_sites' or set 'site_index' in the learner's args"
        )


# -- digits -------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits: read-only images (N×1×8×8 uint8, values 0..16) and labels (int64).

    Read from the file scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``: 64
    pixels and the label a row) without importing scikit-learn, which costs a second of CPU
    in each process; with scikit-learn's own ``load_digits`` where that file is not found.
    """
    table = _digits_table()
    # Pixel values are the integers 0..16.
    images = table[:, :64].reshape(-1, 8, 8).astype(np.uint8)[:, None, :, :]
    labels = table[:, 64].astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


@functools.lru_cache(maxsize=1)
def _digits_split() -> tuple[np.ndarray, np.ndarray]:
    """The digits' training positions in dealing order (:func:`deal_order`) and the held-out
    positions: the same for every site, so computed once a process (a thousand sites in a
    process each recomputed them)."""
    _, labels = digits_arrays()
    train, test = stratified_test_split(labels, DIGITS_TEST_FRACTION)
    dealt = train[deal_order(labels[train])]
    dealt.flags.writeable = False
    test.flags.writeable = False
    return dealt, test


def _digits_table() -> np.ndarray:
    """The digits as scikit-learn ships them: a row of 64 pixels and the label each."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    shipped = [Path(f) / "datasets" / "data" / "digits.csv.gz" for f in folders]
    for path in shipped:
        if path.is_file():
            table = np.loadtxt(path, delimiter=",")
            if table.shape == (1797, 65):
                return table
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return np.column_stack([bunch.data, bunch.target])


def load_digits_site(num_sites: int, site_index: int) -> SiteData:
    """Site ``site_index``'s share of the digits' training part, plus the held-out 20%."""
    _check_share(num_sites, site_index)
    images, labels = digits_arrays()
    dealt, test = _digits_split()
    mine = np.sort(dealt[site_index::num_sites])  # the training positions are ascending
    return SiteData(images[mine], labels[mine], images[test], labels[test], scale=1.0 / 16.0)


# -- CIFAR-10 (binary version) --------------------------------------------------


def cifar10_folder(data_path: str | Path) -> Path:
    """The folder holding the CIFAR-10 ``.bin`` files.

    ``data_path`` may be that folder or one containing ``cifar-10-batches-bin/``.
    """
    folder = Path(data_path).expanduser()
    nested = folder / CIFAR10_FOLDER_NAME
    if not (folder / CIFAR10_TEST_FILE).exists() and nested.is_dir():
        return nested
    return folder


def read_cifar10_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×3×32×32 uint8) and labels (N int64) from one CIFAR-10 binary batch file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetFilesError(
            f"CIFAR-10 file {path} not found; expected {_CIFAR10_EXPECTED} in "
            f"{path.parent}: {_CIFAR10_SOURCE}"
        )
    size = path.stat().st_size
    if size == 0 or size % CIFAR10_RECORD_BYTES:
        raise DatasetFilesError(
            f"CIFAR-10 file {path} is {size} bytes, not a positive multiple of "
            f"{CIFAR10_RECORD_BYTES} (1 label byte + 3072 pixel bytes per record): it is "
            f"truncated or not a CIFAR-10 binary batch. Expected {_CIFAR10_EXPECTED} in "
            f"{path.parent}: {_CIFAR10_SOURCE}"
        )
    records = np.fromfile(path, dtype=np.uint8).reshape(-1, CIFAR10_RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DatasetFilesError(
            f"CIFAR-10 file {path} has label {int(labels.max())} (labels are 0..9): it is "
            "not a CIFAR-10 binary batch (CIFAR-100 records have two label bytes)"
        )
    images = records[:, 1:].reshape(-1, 3, 32, 32)
    return images, labels


def _check_cifar10_files(folder: Path, names: tuple[str, ...]) -> None:
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        where = f"folder {folder}" if folder.is_dir() else f"{folder} (no such folder)"
        raise DatasetFilesError(
            f"CIFAR-10 binary files missing in {where}: {', '.join(missing)}. Expected "
            f"{_CIFAR10_EXPECTED}; {_CIFAR10_SOURCE}, then point 'data_path' at the "
            f"'{CIFAR10_FOLDER_NAME}' folder"
        )


def read_cifar10(
    data_path: str | Path, *, train: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)`` from a CIFAR-10 binary folder.

    With ``train=False`` only ``test_batch.bin`` is read and the train arrays are empty.
    """
    folder = cifar10_folder(data_path)
    names = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE) if train else (CIFAR10_TEST_FILE,)
    _check_cifar10_files(folder, names)
    x_test, y_test = read_cifar10_file(folder / CIFAR10_TEST_FILE)
    if not train:
        empty = np.empty((0, 3, 32, 32), np.uint8)
        return empty, np.empty(0, np.int64), x_test, y_test
    batches = [read_cifar10_file(folder / name) for name in CIFAR10_TRAIN_FILES]
    x_train = np.concatenate([x for x, _ in batches])
    y_train = np.concatenate([y for _, y in batches])
    return x_train, y_train, x_test, y_test


def load_cifar10_site(data_path: str | Path, num_sites: int, site_index: int) -> SiteData:
    """Site ``site_index``'s share of the five training batches, plus the test batch."""
    x_train, y_train, x_test, y_test = read_cifar10(data_path)
    mine = site_share(y_train, num_sites, site_index)
    return SiteData(x_train[mine], y_train[mine], x_test, y_test, scale=1.0 / 255.0)


# -- one entry point ----------------------------------------------------------------


def _check_dataset(dataset: str, data_path: str | Path | None) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if dataset == "cifar10" and not data_path:
        raise ValueError(
            "dataset 'cifar10' needs 'data_path': the folder with the CIFAR-10 binary "
            f"files ({_CIFAR10_EXPECTED})"
        )


def load_site_data(
    dataset: str, num_sites: int, site_index: int, data_path: str | Path | None = None
) -> SiteData:
    """Site ``site_index``'s training share and the shared held-out split of ``dataset``."""
    _check_dataset(dataset, data_path)
    if dataset == "digits":
        return load_digits_site(num_sites, site_index)
    assert data_path is not None
    return load_cifar10_site(data_path, num_sites, site_index)


def load_held_out(dataset: str, data_path: str | Path | None = None) -> SiteData:
    """Only the held-out split of ``dataset`` (the train arrays are empty)."""
    _check_dataset(dataset, data_path)
    if dataset == "digits":
        images, labels = digits_arrays()
        _, test = _digits_split()
        return SiteData(images[:0], labels[:0], images[test], labels[test], scale=1.0 / 16.0)
    assert data_path is not None
    x_train, y_train, x_test, y_test = read_cifar10(data_path, train=False)
    return SiteData(x_train, y_train, x_test, y_test, scale=1.0 / 255.0)
