"""The two modules FLARE's TensorBoard-streaming job names outside its folder
(``pt.learner_with_tb.PTLearner``, ``pt.simple_network.SimpleNetwork``), as a user would
have them on PYTHONPATH: enough for flconfig to read their classes."""

from __future__ import annotations

import textwrap
from pathlib import Path

PT_FILES = {
    "pt/__init__.py": "",
    "pt/learner_with_tb.py": """
        from nvflare.app_common.abstract.learner_spec import Learner


        class PTLearner(Learner):
            def __init__(self, data_path="~/data", lr=0.01, epochs=5, exclude_vars=None,
                         analytic_sender_id="analytic_sender"):
                super().__init__()
        """,
    "pt/simple_network.py": """
        import torch.nn as nn


        class SimpleNetwork(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)
        """,
}


def write_pt_modules(root: Path) -> Path:
    """Write the ``pt`` package under ``root``; ``root``."""
    for name, text in PT_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text).lstrip())
    return root
