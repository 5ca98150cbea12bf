"""The job server holds no thread per waiting site: a thousand sites long-polling for work
(in another process, as a launch's workers are, through their process's one poll) leave
the server's process with the same few threads as one site does, and every one of them
still gets its task at once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np

from flconfig.transport.server import CommServer
from flconfig.types import FLModel

SITES = 1000

# The sites: SiteLinks on one event loop in a child process; each answers its one task with
# its number and leaves at "end".
_SITES_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from flconfig.transport.link import END, SiteLink
    from flconfig.types import FLModel

    address, n = sys.argv[1], int(sys.argv[2])

    async def site(link):
        await link.connect(timeout=60)
        while True:
            task = await link.get_task()
            if task is END:
                break
            if task is None:
                continue
            number = float(link.site.removeprefix("site-"))
            await link.submit_result(task, FLModel(params={"w": task.data.params["w"] + number}))
        await link.close(timeout=30)

    async def main():
        links = [SiteLink(address, f"site-{i}", f"token-of-site-{i}", share_channel=True)
                 for i in range(1, n + 1)]
        await asyncio.gather(*(site(link) for link in links))

    asyncio.run(main())
""")


def _threads() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))


def _polling(server: CommServer) -> int:
    """How many sites have a call open now."""
    with server._state.cond:
        return sum(1 for st in server._state.sites.values() if st.active_calls > 0)


def test_a_thousand_waiting_sites_hold_no_server_thread() -> None:
    tokens = {f"site-{i}": f"token-of-site-{i}" for i in range(1, SITES + 1)}
    before = _threads()
    server = CommServer(tokens).start()
    sites = None
    try:
        with_server = _threads()
        sites = subprocess.Popen([sys.executable, "-c", _SITES_SCRIPT, server.address, str(SITES)])
        assert len(server.wait_for_sites(SITES, timeout=120)) == SITES
        deadline = time.monotonic() + 60
        while server.open_polls != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        # The thousand sites wait in their process's one poll: one call open on the server
        # (one site's, for them all), not a GetTask each.
        assert server.open_polls == 1
        assert _polling(server) == 1
        assert len(server.alive_sites()) == SITES
        waiting = _threads()
        # The server's threads do not grow with the sites waiting on it: the loop, a few
        # handler threads, the heartbeat monitor and gRPC's own, for one site or a thousand.
        assert waiting - before < 30, (before, with_server, waiting)
        results = server.broadcast_and_wait("train", FLModel(params={"w": np.zeros(1)}), None,
                                            SITES, timeout=120)
        assert sorted(float(r.params["w"][0]) for r in results.values()) == [
            float(i) for i in range(1, SITES + 1)]
        assert server.end_run(timeout=60) == []
        assert sites.wait(timeout=60) == 0
    finally:
        if sites is not None and sites.poll() is None:
            sites.kill()
        server.stop()
