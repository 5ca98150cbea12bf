"""FLARE's scikit-learn data loaders: a table file as (features, labels, rows).

The first column is the label, the others the features. pandas reads the file
(``.csv``, ``.xls``/``.xlsx``, ``.json``); it must be installed, as FLARE's
examples require it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_READERS = {"csv": "read_csv", "xls": "read_excel", "xlsx": "read_excel", "json": "read_json"}


def _reader(data_path: str) -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            "nvflare.app_opt.sklearn.data_loader reads tables with pandas, which is not installed "
            "(pip install pandas)") from None
    file_format = Path(data_path).suffix.lstrip(".").lower()
    name = _READERS.get(file_format)
    if name is None:
        raise ValueError(f"no pandas reader for given file format {file_format}")
    return getattr(pd, name)


def _to_data_tuple(data: Any) -> tuple[Any, Any, int]:
    return data.iloc[:, 1:].to_numpy(), data.iloc[:, 0].to_numpy(), data.shape[0]


def load_data(data_path: str, require_header: bool = False) -> tuple[Any, Any, int]:
    """(features, labels, rows) of the whole file.

    As FLARE's loader does, the file is read with pandas' defaults (its first row is
    taken as the header) whatever ``require_header`` says.
    """
    return _to_data_tuple(_reader(data_path)(data_path))


def load_data_for_range(data_path: str, start: int, end: int,
                        require_header: bool = False) -> tuple[Any, Any, int]:
    """(features, labels, rows) of rows ``start`` to ``end`` (after the header row, as FLARE)."""
    return _to_data_tuple(_reader(data_path)(data_path).iloc[start:end])
