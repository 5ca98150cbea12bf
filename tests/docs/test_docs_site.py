"""The documentation site: built with MkDocs with warnings as errors, its reference pages
made from the registry and the schemas, its front page rendered by a real headless Chromium."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr  # a warning (a broken link) fails it
    return out


def test_the_site_has_every_page_of_the_nav(site: Path) -> None:
    for page in ("quickstart", "job-format", "components", "writing-a-learner", "writing-a-receiver",
                 "plugins", "migrating", "deploy", "reliability", "scaling"):
        assert (site / page / "index.html").is_file(), page


def test_the_component_reference_is_made_from_the_registry(site: Path) -> None:
    html = (site / "components" / "index.html").read_text()
    assert "<!-- flconfig:" not in html
    assert 'id="scatterandgather"' in html
    assert "nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather" in html
    assert "<code>num_rounds</code>" in html and "rounds to run." in html


def test_the_job_format_reference_is_made_from_the_schemas(site: Path) -> None:
    html = (site / "job-format" / "index.html").read_text()
    assert "<!-- flconfig:" not in html
    assert "<code>site_state</code>" in html and "<code>deploy_map</code>" in html
    assert "<code>format_version</code>" in html


def test_the_quickstart_draws_the_example_as_explain_does(site: Path) -> None:
    html = (site / "quickstart" / "index.html").read_text()
    assert "<!-- flconfig:" not in html
    drawn = html.split('<pre class="mermaid"><code>', 1)[1].split("</code></pre>", 1)[0]
    explained = subprocess.run([sys.executable, "-m", "flconfig", "explain", "configs/tensorboard-streaming",
                                "--format", "mermaid"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert explained.returncode == 0, explained.stderr
    # The page holds the command's flowchart, HTML-escaped.
    assert drawn.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&") \
        == explained.stdout.rstrip("\n")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        pass


@pytest.fixture
def served(site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian: apt-get install chromium)")
def test_the_front_page_renders_in_a_real_browser(served: str, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "front.png"
    done = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
                           "--window-size=1280,900", f"--screenshot={shot}", served],
                          capture_output=True, text=True, timeout=120)
    assert shot.is_file(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 900)
    # Material's indigo header across the top, and a page of text below it.
    header = image.getpixel((640, 20))
    assert header[2] > header[0] + 60 and header[2] > header[1] + 40, header
    body = image.crop((300, 150, 1000, 850))
    colours = body.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50  # text and code, not a blank or error page
    dumped = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                             "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile2'}",
                             "--dump-dom", served], capture_output=True, text=True, timeout=120)
    assert "Run federated-learning jobs from config files" in dumped.stdout
    assert "Where to go next" in dumped.stdout and "quickstart/" in dumped.stdout
