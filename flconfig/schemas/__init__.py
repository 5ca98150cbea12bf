"""The JSON Schemas of job files, and checking parsed documents against them.

- :mod:`.files`: the four schemas (``meta``, ``client``, ``server``, ``component``), the
  single source of truth, loaded, bundled and written out for editors.
- :mod:`.checker`: :func:`check_document` and :func:`check_args`, schema violations as
  located problems with short messages and a hint on how to fix each.

Validating a job with them never pulls in torch, tensorboard or grpc.
"""

from .checker import check_args, check_document
from .files import (
    SCHEMA_KINDS,
    bundle_schema,
    bundle_text,
    load_schema,
    schema_filename,
    schema_text,
    write_schemas,
)

__all__ = [
    "SCHEMA_KINDS", "bundle_schema", "bundle_text", "check_args", "check_document", "load_schema",
    "schema_filename", "schema_text", "write_schemas",
]  # fmt: skip
