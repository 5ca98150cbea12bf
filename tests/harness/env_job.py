"""A job whose sites log what their process sees: FLARE's hello-numpy (:mod:`.numpy_job`)
with a client component in its custom/ folder that logs, at the run's start, the site's
``CUDA_VISIBLE_DEVICES`` and process id to the site's log."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

from .numpy_job import write_job

# A client component in the job's custom/ folder: each site logs, at the run's start, which
# GPUs its process sees and which process it is.
ENV_REPORTER = textwrap.dedent("""
    import os

    from nvflare.apis.event_type import EventType
    from nvflare.apis.fl_component import FLComponent


    class EnvReporter(FLComponent):
        def handle_event(self, event_type, fl_ctx):
            if event_type == EventType.START_RUN:
                seen = os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)")
                self.log_info(fl_ctx, f"sees CUDA_VISIBLE_DEVICES={seen} in process {os.getpid()}")
""")
SEEN = re.compile(r"sees CUDA_VISIBLE_DEVICES=(\S+) in process (\d+)")


def reporting_job(tmp_path: Path) -> Path:
    """The job, one round of FedAvg, written under ``tmp_path``."""
    job = write_job(tmp_path)
    (job / "app" / "custom").mkdir()
    (job / "app" / "custom" / "env_reporter.py").write_text(ENV_REPORTER)
    client_file = job / "app" / "config" / "config_fed_client.json"
    client = json.loads(client_file.read_text())
    client["components"].append({"id": "env_reporter", "path": "env_reporter.EnvReporter", "args": {}})
    client_file.write_text(json.dumps(client, indent=2))
    server_file = job / "app" / "config" / "config_fed_server.json"
    server = json.loads(server_file.read_text())
    server["workflows"] = server["workflows"][:1]
    server["workflows"][0]["args"]["num_rounds"] = 1
    server_file.write_text(json.dumps(server, indent=2))
    return job


def seen_by(ws: Path, site: str) -> tuple[str, int]:
    """(CUDA_VISIBLE_DEVICES, pid) as ``site``'s process saw them, from its log."""
    found = SEEN.search((ws / site / "simulate_job" / "log.txt").read_text())
    assert found, f"{site} did not report its environment"
    return found.group(1), int(found.group(2))
