"""FLARE's ``nvflare.job_config.file_source``: a file or folder copied into an app folder."""

from __future__ import annotations

import os
from typing import Any


class FileSource:
    """``src_path`` (a file, or a folder merged) into the app's ``custom/`` (default) or
    ``config/`` folder, under ``dest_dir``."""

    def __init__(self, src_path: str, dest_dir: str | None = None, app_folder_type: str | None = None) -> None:
        if not os.path.exists(src_path):
            raise ValueError(f"{src_path} does not exist")
        if dest_dir is not None and os.path.isabs(dest_dir):
            raise ValueError(f"dest_dir must be relative, not {dest_dir!r}")
        if app_folder_type not in (None, "custom", "config"):
            raise ValueError(f"app_folder_type must be 'custom' or 'config', not {app_folder_type!r}")
        self.src_path = src_path
        self.dest_dir = dest_dir
        self.app_folder_type = app_folder_type

    def add_to_fed_job(self, job: Any, ctx: Any) -> None:
        job.add_file_source(self.src_path, self.dest_dir, self.app_folder_type, ctx)
