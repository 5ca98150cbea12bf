"""What the tests share: real servers, sites, jobs, launches and deployments to test
against (no mocks). Fixtures are registered in ``tests/conftest.py``.

- :mod:`.comm`: a real server and sites over gRPC, proxies, raw calls, collectors.
- :mod:`.launching`: ``flconfig launch`` as a user runs it, and its processes.
- :mod:`.env_job`: a job whose sites log the GPUs their process sees.
- :mod:`.deployment`: provisioned services over mutual TLS, and waits on them.
- :mod:`.exported_jobs`: FLARE 2.9's exported job folders, as FLARE writes them.
- :mod:`.wandb_files`: W&B's offline run files, read back.
"""

from pathlib import Path

#: The repository, and its tests folder.
REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
