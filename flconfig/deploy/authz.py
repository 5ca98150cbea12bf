"""What an admin may do on a deployed server: FLARE's roles and default policy.

An admin's role and organization come from its certificate (written by ``flconfig
provision`` from the project file, signed by the project CA), never from what the
admin says. The rights are FLARE's default authorization policy, for flconfig's
admin commands:

============  ===========  ==========================  ==========================  ===============
role          submit       abort (manage_job)          logs, download              shutdown
============  ===========  ==========================  ==========================  ===============
project_admin any job      any job                     any job                     yes
org_admin     no           jobs of its org's admins    jobs of its org's admins    of its org's server
lead          yes          its own jobs                its own jobs                of its org's server
member        no           no                          no                          no
============  ===========  ==========================  ==========================  ===============

Every role may list the jobs and the connected sites (``flconfig jobs``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The roles, as FLARE names them.
ROLES = ("project_admin", "org_admin", "lead", "member")

#: The rights of flconfig's admin calls, by FLARE's names.
SUBMIT, VIEW, MANAGE, DOWNLOAD, OPERATE = "submit_job", "view", "manage_job", "download_job", "operate"
#: Each admin call's right.
RIGHT_OF = {"Submit": SUBMIT, "Jobs": VIEW, "Abort": MANAGE, "Logs": DOWNLOAD, "Download": DOWNLOAD,
            "Shutdown": OPERATE}

# FLARE's rule values: "any", "none", "n:submitter" (the admin submitted the job),
# "o:submitter" (the admin's org submitted it), "o:site" (the admin's org runs the site).
_POLICY: dict[str, dict[str, str]] = {
    "project_admin": {SUBMIT: "any", VIEW: "any", MANAGE: "any", DOWNLOAD: "any", OPERATE: "any"},
    "org_admin": {SUBMIT: "none", VIEW: "any", MANAGE: "o:submitter", DOWNLOAD: "o:submitter",
                  OPERATE: "o:site"},
    "lead": {SUBMIT: "any", VIEW: "any", MANAGE: "n:submitter", DOWNLOAD: "n:submitter", OPERATE: "o:site"},
    "member": {SUBMIT: "none", VIEW: "any", MANAGE: "none", DOWNLOAD: "none", OPERATE: "none"},
}
_WHAT = {SUBMIT: "submit jobs", VIEW: "list jobs", MANAGE: "abort", DOWNLOAD: "read the logs or results of",
         OPERATE: "shut down"}


@dataclass(frozen=True)
class Admin:
    """An admin as its certificate says: name, organization and role."""

    name: str
    org: str
    role: str


def refusal(admin: Admin, right: str, *, submitter: str = "", submitter_org: str = "",
            site_org: str = "", job_id: str = "") -> str | None:
    """Why ``admin`` may not exercise ``right`` (on the job ``job_id`` that ``submitter``
    of ``submitter_org`` submitted, or on the site of ``site_org``), or None if it may."""
    rules = _POLICY.get(admin.role)
    if rules is None:
        return f"admin {admin.name!r} has no known role ({admin.role or 'none'!r}) in its certificate"
    rule = rules[right]
    if rule == "any":
        return None
    if rule == "n:submitter" and admin.name == submitter:
        return None
    if rule == "o:submitter" and admin.org and admin.org == submitter_org:
        return None
    if rule == "o:site" and admin.org and admin.org == site_org:
        return None
    who = f"admin {admin.name!r} ({admin.role}{', org ' + repr(admin.org) if admin.org else ''})"
    if rule == "none":
        return f"{who} may not {_WHAT[right]}" + (" jobs" if right in (MANAGE, DOWNLOAD) else "")
    if rule == "n:submitter":
        return f"{who} may {_WHAT[right]} only its own jobs; job {job_id} was submitted by {submitter!r}"
    if rule == "o:submitter":
        return (f"{who} may {_WHAT[right]} only the jobs of its org's admins; job {job_id} was submitted "
                f"by {submitter!r}" + (f" of org {submitter_org!r}" if submitter_org else ""))
    return f"{who} may {_WHAT[right]} only a server of its own org" + (
        f" (this one is of org {site_org!r})" if site_org else "")
