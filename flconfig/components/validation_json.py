"""ValidationJsonGenerator: writes cross-site validation results to a JSON file."""

from __future__ import annotations

from .base import Widget, check_file_name, check_relative_path


class ValidationJsonGenerator(Widget):
    """Collects the validation results of cross-site evaluation and writes them,
    by site and model, to one JSON file (FLARE's ``ValidationJsonGenerator``).
    """

    def __init__(
        self,
        results_dir: str = "cross_site_val",
        json_file_name: str = "cross_val_results.json",
    ) -> None:
        """
        Args:
            results_dir: folder, relative to the server's run directory, of the file.
            json_file_name: name of the JSON file.
        """
        self.results_dir = check_relative_path("results_dir", results_dir)
        self.json_file_name = check_file_name("json_file_name", json_file_name)
