"""Admins' roles (FLARE's project_admin, org_admin, lead, member), from the project file,
in the admin's certificate, enforced by a real server over mutual TLS."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from harness.deployment import SEED_JOB, flconfig, free_port, job_variant, wait_for

pytestmark = pytest.mark.slow

ADMINS = {  # name: (org, role)
    "boss@a": ("a", "project_admin"),
    "orgadmin@a": ("a", "org_admin"),
    "lead@a": ("a", "lead"),
    "lead@b": ("b", "lead"),
    "member@a": ("a", "member"),
}


def _project(root: Path, port: int, member_role: str = "member") -> Path:
    lines = ["name: roles", "participants:",
             f"  - {{name: server, type: server, org: a, host: localhost, port: {port}}}",
             "  - {name: site-1, type: client, org: a}"]
    for name, (org, role) in ADMINS.items():
        lines.append(f"  - {{name: '{name}', type: admin, org: {org}, role: "
                     f"{member_role if role == 'member' else role}}}")
    root.mkdir(parents=True, exist_ok=True)
    (root / "project.yaml").write_text("\n".join(lines) + "\n")
    flconfig("provision", str(root / "project.yaml"), "-o", str(root), check=True)
    return root / "project.yaml"


def _spawn(root: Path, command: str, name: str, *extra: str) -> subprocess.Popen[bytes]:
    with open(root / name / "service.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "flconfig", command, str(root / name), *extra],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _as(root: Path, admin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return flconfig(*args, "--kit", str(root / admin))


def test_each_role_may_do_what_flare_lets_it_and_is_told_in_one_line_what_not(tmp_path: Path) -> None:
    root = tmp_path / "kits"
    port = free_port()
    project = _project(root, port)
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate((root / "member@a" / "startup" / "admin.crt").read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.UNSTRUCTURED_NAME)[0].value == "member"
    assert json.loads((root / "member@a" / "startup" / "kit.json").read_text())["role"] == "member"

    server = _spawn(root, "server", "server", "--host", "127.0.0.1")
    site = _spawn(root, "client", "site-1")
    try:
        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, "the server to listen")
        wait_for(lambda: "site-1" in json.loads(_as(root, "member@a", "jobs", "--json").stdout or "{}").get(
            "sites", []), "site-1 to connect")

        # member: looks, nothing more
        job = job_variant(SEED_JOB, tmp_path / "seed", rounds=1, epochs=1, sites=["site-1"], min_clients=1)
        refused = _as(root, "member@a", "submit", str(job))
        assert refused.returncode == 1
        assert refused.stderr.strip().splitlines() == [
            "flconfig submit: the server refuses this kit (member@a): admin 'member@a' (member, org 'a') "
            "may not submit jobs"]
        # org_admin: may not submit either
        assert "admin 'orgadmin@a' (org_admin, org 'a') may not submit jobs" in _as(
            root, "orgadmin@a", "submit", str(job)).stderr

        # lead@a submits; its job is its own
        submitted = _as(root, "lead@a", "submit", str(job))
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        job_id = submitted.stdout.strip().splitlines()[-1].split()[2]
        listing = json.loads(_as(root, "member@a", "jobs", "--json").stdout)  # every role may list
        assert [(j["id"], j["submitter"], j["submitter_org"]) for j in listing["jobs"]] == [
            (job_id, "lead@a", "a")]
        wait_for(lambda: json.loads(_as(root, "member@a", "jobs", "--json").stdout)["jobs"][0]["state"]
              in ("finished", "failed"), "the job to end")

        # another org's lead: not its job
        for command in (("logs", job_id), ("download", job_id, "-o", str(tmp_path / "b")), ("abort", job_id)):
            result = _as(root, "lead@b", *command)
            assert result.returncode == 1, command
            assert "Traceback" not in result.stderr
            verb = {"logs": "read the logs or results of", "download": "read the logs or results of",
                    "abort": "abort"}[command[0]]
            assert result.stderr.strip().splitlines() == [
                f"flconfig {command[0]}: admin 'lead@b' (lead, org 'b') may {verb} only its own jobs; job "
                f"{job_id} was submitted by 'lead@a'"], result.stderr
        assert not (tmp_path / "b" / job_id).exists()
        # a member may not read it either
        assert "admin 'member@a' (member, org 'a') may not read the logs or results of jobs" in _as(
            root, "member@a", "logs", job_id).stderr
        # its submitter, its org's admin and the project admin may
        assert "workflow scatter_and_gather" in _as(root, "lead@a", "logs", job_id).stdout
        assert "workflow scatter_and_gather" in _as(root, "orgadmin@a", "logs", job_id).stdout
        downloaded = _as(root, "boss@a", "download", job_id, "-o", str(tmp_path / "dl"))
        assert downloaded.returncode == 0, downloaded.stderr
        assert (tmp_path / "dl" / job_id / "log.txt").is_file()

        # why a job ended is for those who may read its logs
        aborted = _as(root, "lead@a", "submit", str(job_variant(SEED_JOB, tmp_path / "long", rounds=200,
                                                                  epochs=1, sites=["site-1"], min_clients=1)))
        aborted_id = aborted.stdout.strip().splitlines()[-1].split()[2]
        assert _as(root, "lead@a", "abort", aborted_id).returncode == 0
        wait_for(lambda: json.loads(_as(root, "lead@a", "jobs", aborted_id, "--json").stdout)["jobs"][0]["state"]
                 == "aborted", "the abort")
        seen = {who: json.loads(_as(root, who, "jobs", aborted_id, "--json").stdout)["jobs"][0]["error"]
                for who in ("lead@a", "member@a", "lead@b", "orgadmin@a")}
        assert seen["lead@a"].startswith("aborted by lead@a") and seen["orgadmin@a"] == seen["lead@a"]
        assert seen["member@a"] == seen["lead@b"] == "(the reason is shown to those who may read the job's logs)"

        # shutting the server down: not another org's lead
        assert "admin 'lead@b' (lead, org 'b') may shut down only a server of its own org (this one is " \
               "of org 'a')" in _as(root, "lead@b", "shutdown").stderr
        assert server.poll() is None
        # the refusals are in the server's log, one line each
        log = (root / "server" / "service.log").read_text()
        assert "refused manage_job from" in log and "lead@b" in log and "Traceback" not in log

        # a role changed in the project file: a new certificate, the old one revoked at once
        old_kit = tmp_path / "old-member"
        shutil.copytree(root / "member@a", old_kit)
        project.write_text(project.read_text().replace("role: member", "role: lead"))
        out = flconfig("provision", str(project), "-o", str(root), check=True)
        assert "member@a" in out.stdout
        assert _as(root, "member@a", "submit", str(job)).returncode == 0
        stale = flconfig("jobs", "--kit", str(old_kit))
        assert stale.returncode == 1
        assert "the certificate of 'member@a' is revoked" in stale.stderr

        assert _as(root, "boss@a", "shutdown").returncode == 0
        server.wait(timeout=60)
    finally:
        for proc in (server, site):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)


def test_a_role_is_for_admins_only_and_one_of_flares(tmp_path: Path) -> None:
    project = tmp_path / "project.yaml"
    project.write_text("name: p\nparticipants:\n"
                       "  - {name: server, type: server, role: lead}\n"
                       "  - {name: a@x, type: admin, role: superuser}\n")
    result = flconfig("provision", str(project), "-o", str(tmp_path / "out"))
    assert result.returncode != 0
    assert f"{project}:3:" in result.stdout + result.stderr
    assert "participant 'server': only admins have a role" in result.stdout + result.stderr
    assert ("admin 'a@x': 'role' must be one of project_admin, org_admin, lead, member, not 'superuser'"
            in result.stdout + result.stderr)
    assert not (tmp_path / "out" / "server").exists()
