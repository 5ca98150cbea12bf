"""``flconfig explain``: what a job will do, in text and as a Mermaid flowchart that
Mermaid's own parser accepts."""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO
from harness.flare_pt import write_pt_modules

EXAMPLE = REPO / "configs" / "tensorboard-streaming"
FLARE_JOB = REPO.parent / "shared" / "flare-jobs" / "tensorboard-streaming"


def explain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flconfig", "explain", *args], capture_output=True,
                          text=True, timeout=120, cwd=REPO)


def test_the_example_is_explained_per_participant_with_its_event_stream() -> None:
    done = explain("configs/tensorboard-streaming")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("job tensorboard-streaming\n\nserver: app 'app' "
                           "(configs/tensorboard-streaming/app/config/config_fed_server.json)\n"
                           "  workflows, in order:\n"
                           "    1. scatter_and_gather (ScatterAndGather): num rounds 3, min clients 2, "
                           "train task name train, start round 0\n"
                           "    2. cross_site_validate (CrossSiteModelEval)\n")
    assert ("    scatter_and_gather (ScatterAndGather).aggregator_id -> aggregator "
            "(InTimeAccumulateWeightedAggregator)\n") in text
    assert "    persistor (PTFileModelPersistor).model = DigitsCNN, built inside it\n" in text
    assert ("client sites site-1, site-2: app 'app' (configs/tensorboard-streaming/app/config/config_fed_client.json)\n"
            "  tasks:\n    train, submit_model, validate -> Executor (LearnerExecutor)\n") in text
    assert "    Executor (LearnerExecutor).learner_id -> pt_learner (DigitsLearner)\n" in text
    assert text.endswith(
        "event streams:\n"
        "  site log_writer (TBWriter) sends 'analytix_log_stats'\n"
        "    -> site event_to_fed (ConvertToFedEvent) converts it to 'fed.analytix_log_stats'\n"
        "      -> server tb_analytics_receiver (TBAnalyticsReceiver) receives 'fed.analytix_log_stats': "
        "TensorBoard files in tb_events/<site>/\n")


def test_a_stream_that_reaches_no_receiver_says_so(tmp_path: Path) -> None:
    job = tmp_path / "job"
    shutil.copytree(EXAMPLE, job)
    client_file = job / "app" / "config" / "config_fed_client.json"
    client = json.loads(client_file.read_text())
    client["components"] = [c for c in client["components"] if c["id"] != "event_to_fed"]
    client_file.write_text(json.dumps(client))
    server_file = job / "app" / "config" / "config_fed_server.json"  # and no receiver waits for it
    server = json.loads(server_file.read_text())
    server["components"] = [c for c in server["components"] if c["id"] != "tb_analytics_receiver"]
    server_file.write_text(json.dumps(server))
    done = explain(str(job))
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("  site log_writer (TBWriter) sends 'analytix_log_stats'\n"
                                "    -> nothing receives it: its metrics go nowhere\n")


def test_an_invalid_job_is_one_line_naming_its_first_problem(tmp_path: Path) -> None:
    job = tmp_path / "job"
    shutil.copytree(EXAMPLE, job)
    client_file = job / "app" / "config" / "config_fed_client.json"
    client_file.write_text(client_file.read_text().replace('"pt_learner"', '"pt_lerner"', 1))
    done = explain(str(job))
    assert (done.returncode, done.stdout) == (1, "")
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("flconfig explain: the job is invalid (")
    assert "config_fed_client.json:" in done.stderr and f"flconfig validate {job} lists them all" in done.stderr


def test_mermaid_has_a_box_per_participant_tasks_references_and_streams() -> None:
    done = explain("configs/tensorboard-streaming", "--format", "mermaid")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "flowchart LR"
    assert '  subgraph server["server (app app)"]' in lines
    assert '  subgraph c1["client sites: site-1, site-2 (app app)"]' in lines
    assert '    c1_executors_0_executor["Executor<br/><small>LearnerExecutor</small>"]' in lines
    assert ('    c1_executors_0_executor_tasks(["tasks: train, submit_model, validate"]) --> '
            'c1_executors_0_executor') in lines
    assert '    server_workflows_0 -->|"then"| server_workflows_1' in lines
    assert '    c1_executors_0_executor -.->|"learner_id"| c1_components_0' in lines
    assert lines[-2:] == ['  c1_components_1 ==>|"analytix_log_stats"| c1_components_2',
                          '  c1_components_2 ==>|"fed.analytix_log_stats"| server_components_5']


def odd_job(tmp_path: Path) -> Path:
    """Two executors of one class without ids, and an id full of Mermaid's own characters."""
    job = tmp_path / "odd"
    subprocess.run([sys.executable, "-m", "flconfig", "init", str(job), "--template", "numpy"], check=True,
                   capture_output=True, timeout=120)
    client_file = job / "app" / "config" / "config_fed_client.json"
    client = json.loads(client_file.read_text())
    trainer = {"path": "nvflare.app_common.np.np_trainer.NPTrainer", "args": {}}
    client["executors"] = [{"tasks": ["train"], "executor": trainer}, {"tasks": ["submit_model"], "executor": trainer},
                           client["executors"][1]]
    client["components"] = [{"id": 'we"ird|id>', "args": {"events_to_convert": ["x"]},
                             "path": "nvflare.app_common.widgets.convert_to_fed_event.ConvertToFedEvent"}]
    client_file.write_text(json.dumps(client))
    return job


def test_mermaid_keeps_same_class_executors_apart_and_escapes_labels(tmp_path: Path) -> None:
    done = explain(str(odd_job(tmp_path)), "--format", "mermaid")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert '    c1_executors_0_executor_tasks(["tasks: train"]) --> c1_executors_0_executor' in lines
    assert '    c1_executors_1_executor_tasks(["tasks: submit_model"]) --> c1_executors_1_executor' in lines
    assert '    c1_components_0["we#quot;ird#124;id#gt;<br/><small>ConvertToFedEvent</small>"]' in lines


@pytest.mark.skipif(not FLARE_JOB.is_dir(), reason="needs ../shared/flare-jobs")
def test_flares_own_job_folder_is_explained_with_its_readmes_setup(tmp_path: Path) -> None:
    pt = write_pt_modules(tmp_path / "pypath")
    done = explain(str(FLARE_JOB), "--python-path", str(pt))
    assert done.returncode == 0, done.stderr
    assert "    train, submit_model, validate -> Executor (LearnerExecutor)\n" in done.stdout
    assert "    Executor (LearnerExecutor).learner_id -> pt_learner (PTLearner)\n" in done.stdout
    assert "receives 'fed.analytix_log_stats': TensorBoard files in tb_events/<site>/" in done.stdout


NODE = shutil.which("node") is not None and shutil.which("npm") is not None
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def mermaid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with Mermaid 11 (and jsdom) installed from the npm registry."""
    where = tmp_path_factory.mktemp("mermaid")
    installed = subprocess.run(["npm", "install", "--silent", "--prefix", str(where), "mermaid@11", "jsdom@24"],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    return where


@pytest.mark.slow
@pytest.mark.skipif(not NODE, reason="Mermaid's parser runs on Node.js")
def test_mermaids_own_parser_accepts_the_flowcharts(mermaid: Path, tmp_path: Path) -> None:
    shutil.copytree(mermaid / "node_modules", tmp_path / "node_modules", symlinks=True)
    files = []
    for job in ("configs/tensorboard-streaming", "configs/client-api", "flconfig/templates/numpy",
                str(odd_job(tmp_path))):
        out = tmp_path / f"{Path(job).name}.mmd"
        out.write_text(explain(job, "--format", "mermaid").stdout)
        files.append(str(out))
    broken = tmp_path / "broken.mmd"
    broken.write_text("flowchart LR\n  a[x --> b\n")  # the check itself can fail
    shutil.copy(REPO / "tests" / "harness" / "mermaid_check.mjs", tmp_path / "check.mjs")
    done = subprocess.run(["node", "check.mjs", *files, str(broken)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    verdicts = {Path(word[0]).stem: word[1] for word in (line.split() for line in done.stdout.splitlines())
                if len(word) > 1 and word[1] in ("OK", "ERROR")}
    assert verdicts == {"tensorboard-streaming": "OK", "client-api": "OK", "numpy": "OK", "odd": "OK",
                        "broken": "ERROR"}, \
        done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.skipif(not NODE or CHROMIUM is None, reason="needs Node.js (npm) and Chromium")
def test_the_flowchart_draws_a_picture_in_a_real_browser(mermaid: Path, tmp_path: Path) -> None:
    from PIL import Image

    chart = explain("configs/tensorboard-streaming", "--format", "mermaid").stdout
    page = tmp_path / "graph.html"
    script = (mermaid / "node_modules" / "mermaid" / "dist" / "mermaid.min.js").as_uri()
    page.write_text(f"""<!doctype html><html><body style="background:#fff">
<pre class="mermaid">{html.escape(chart)}</pre>
<script src="{script}"></script>
<script>mermaid.initialize({{startOnLoad: false}});
mermaid.run().then(() => {{ document.body.dataset.drawn = "yes"; }},
                   (e) => {{ document.body.dataset.drawn = "error: " + e; }});</script>
</body></html>""")
    browser = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--allow-file-access-from-files", "--virtual-time-budget=20000"]
    dom = subprocess.run([*browser, f"--user-data-dir={tmp_path / 'p1'}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert 'data-drawn="yes"' in dom, dom[-2000:]
    svg = dom.split("<svg", 1)[1].split("</svg>", 1)[0]
    # A box for each component, workflow and executor, with its class; the stream's events on its arrows.
    for label in ("persistor", "PTFileModelPersistor", "scatter_and_gather", "ScatterAndGather", "pt_learner",
                  "DigitsLearner", "LearnerExecutor", "tb_analytics_receiver", "tasks: train, submit_model, validate",
                  "fed.analytix_log_stats"):
        assert label in svg, label
    shot = tmp_path / "graph.png"
    subprocess.run([*browser, f"--user-data-dir={tmp_path / 'p2'}", "--window-size=1600,900",
                    f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120)
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 20  # boxes, arrows and text drawn, not a blank page


def test_a_job_that_is_not_there_is_a_usage_error() -> None:
    done = explain("no/such/job")
    assert (done.returncode, done.stdout, done.stderr) == (2, "", "flconfig explain: no/such/job: no such job folder\n")
