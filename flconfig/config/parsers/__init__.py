"""The config readers, one module per format, and the one choice among them by a file's
suffix: :mod:`.json`, :mod:`.yaml` and :mod:`.hocon` (``.conf``) each read text into a
:class:`~flconfig.config.documents.Document` with the position of every key and value;
:func:`load_document` reads a file and :func:`parse_text` picks the reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ...errors import ConfigError, Position
from ..documents import DEFAULT_SUFFIX, HOCON_SUFFIXES, YAML_SUFFIXES, Document
from .hocon import parse_hocon
from .json import parse_json
from .yaml import parse_yaml

__all__ = ["load_document", "parse_hocon", "parse_json", "parse_text", "parse_yaml"]


def parse_text(text: str, file: str, *, folder: str | Path | None = None, root: str | Path | None = None,
               environ: Mapping[str, str] | None = None) -> Document:
    """Parse ``text`` by the suffix of ``file`` (``x.conf.default`` is HOCON); ``folder``,
    ``root`` and ``environ`` are :func:`parse_hocon`'s."""
    name = Path(file).name.lower()
    suffix = Path(name.removesuffix(DEFAULT_SUFFIX)).suffix
    if suffix in YAML_SUFFIXES:
        return parse_yaml(text, file)
    if suffix in HOCON_SUFFIXES:
        return parse_hocon(text, file, folder=folder, root=root, environ=environ)
    return parse_json(text, file)


def load_document(path: str | Path, display: str | None = None, *, root: str | Path | None = None,
                  environ: Mapping[str, str] | None = None) -> Document:
    """Read and parse a config file. ``display`` is the name used in positions; ``root``
    is the job folder a HOCON include must stay inside (default: the file's folder), and
    ``environ`` what a HOCON ``${X}`` the file does not define may read (default: nothing).
    """
    file = display or str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError.single("io", f"cannot read the file: {exc.strerror}", Position(file)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        column = len(raw[line_start : exc.start].decode("utf-8-sig", "replace")) + 1
        raise ConfigError.single("syntax", f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x})",
                                 Position(file, line, column), hint="save the file as UTF-8") from None
    folder = Path(path).parent
    return parse_text(text, file, folder=folder, root=root if root is not None else folder, environ=environ)
