"""JobLogStreamer and JobLogReceiver: FLARE's live streaming of a site's job log to the server.

FLARE 2.9 (``nvflare.app_common.logging``) lets a site's ``JobLogStreamer`` tail its job log
and stream it to the server, where a ``JobLogReceiver`` writes each site's stream to
``{dest_dir}/{job_id}/{site}/{log_file}``. flconfig does this without them:

* in the simulator (``flconfig launch``), every site writes its own lines, and only them, to
  ``WORKSPACE/SITE/JOB_ID/log.txt`` on the same machine as the server's log;
* deployed (``flconfig client``), every site sends the new bytes of its job log to the server
  with each poll (about once a second while the job runs) and the server keeps them in
  ``WORKSPACE/JOB_ID/sites/SITE/log.txt``, which ``flconfig download`` fetches with the job.

So both classes are accepted, with FLARE's arguments checked, and do nothing else: a FLARE
job that names them validates and runs, and its site logs are where flconfig keeps them.

Standard library only at import time (the registry reads this file).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from ..types import Event, EventType, RunContext
from .base import Widget, site_logger

log = logging.getLogger(__name__)


class JobLogStreamer(Widget):
    """Accepted: a site's job log already reaches the server (see the module docstring).

    FLARE's ``JobLogStreamer`` (client side) streams ``log_file_name`` live; under flconfig
    the site's ``log.txt`` is sent to the server as the job runs when deployed, and is in
    the workspace beside the server's in the simulator.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "log_file_name": {"minLength": 1, "pattern": r"^(?![/\\])(?!.:)(?!(.*[/\\])?\.\.([/\\]|$))",
                          "patternErrorMessage": "a relative file name (no leading '/', drive or '..')"},
        "liveness_interval": {"exclusiveMinimum": 0},
        "poll_interval": {"exclusiveMinimum": 0},
    }

    def __init__(self, log_file_name: str = "log.txt", liveness_interval: float = 10.0,
                 poll_interval: float = 0.5, target_parent_server: bool = False) -> None:
        """
        Args:
            log_file_name: the log file FLARE streams (flconfig keeps ``log.txt``).
            liveness_interval: seconds between FLARE's heartbeats (accepted).
            poll_interval: seconds between FLARE's reads of the file (accepted).
            target_parent_server: FLARE's hierarchical deployments (accepted).
        """
        self.log_file_name = log_file_name
        self.liveness_interval = liveness_interval
        self.poll_interval = poll_interval
        self.target_parent_server = target_parent_server

    def handle_event(self, event: Event, ctx: RunContext) -> None:
        """Say once where this site's log is."""
        if event.type == EventType.START_RUN:
            site_logger(ctx, log).info("JobLogStreamer: this site's job log is %s; flconfig sends it to the server "
                              "as the job runs when deployed (nothing else to do here)", ctx.run_dir / "log.txt")


class JobLogReceiver(Widget):
    """Accepted: the server already keeps every site's job log (see the module docstring).

    FLARE's ``JobLogReceiver`` (server side) writes the streams to ``dest_dir``; under
    flconfig the sites' logs are in ``WORKSPACE/JOB_ID/sites/SITE/log.txt`` when deployed,
    and in ``WORKSPACE/SITE/JOB_ID/log.txt`` in the simulator.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {"idle_timeout": {"minimum": 0}}

    def __init__(self, dest_dir: str | None = None, idle_timeout: float = 30.0) -> None:
        """
        Args:
            dest_dir: where FLARE writes the streams (accepted; flconfig's place is fixed).
            idle_timeout: seconds FLARE waits for more of a stream (accepted).
        """
        self.dest_dir = dest_dir
        self.idle_timeout = idle_timeout

