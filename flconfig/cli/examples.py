"""The "examples:" each command's ``--help`` ends with (where its module gives none)."""

from __future__ import annotations

EXAMPLES = {
    "validate": """examples:
  flconfig validate my-job                        one job: every problem at file:line:col
  flconfig validate jobs/*                        many jobs at once
  flconfig validate my-job --format json          for CI and editors
  flconfig validate my-job --python-path ../pt    modules beside the job, as FLARE's examples have them
""",
    "schema": """examples:
  flconfig schema --list                          the schemas and their ids
  flconfig schema client                          the client config's JSON Schema
  flconfig schema --write .schemas                all of them, for an editor's settings
""",
    "launch": """examples:
  flconfig launch my-job                          server + sites here, metrics to TensorBoard
  flconfig launch my-job -n 64 --site-state release
  flconfig launch my-job --tensorboard            serve TensorBoard while it runs
  flconfig launch my-job --format json           one JSON event a line, for scripts
  flconfig launch my-job --gpus 0,1               sites spread over two GPUs
  flconfig launch my-job --backend ray --ray-address auto
""",
    "run": """examples:
  flconfig run job.py                             a FLARE job script, simulated here
  flconfig run job.py --num_rounds 2              the script's own arguments follow it
  flconfig run --check job.py                     check every job it would run, run none
  flconfig run job.py --export                    write the job folder instead
""",
    "provision": """examples:
  flconfig provision project.yaml -o kits         a CA and a startup kit per participant
  flconfig provision project.yaml -o kits --revoke site-3
""",
    "poc": """examples:
  flconfig poc prepare -n 2 && flconfig poc start
  flconfig submit my-job && flconfig jobs
  flconfig poc stop
""",
    "server": """examples:
  flconfig server kits/server                     serve the project of this kit
  flconfig server kits/server --job-ports 8100-8199 --tensorboard
""",
    "client": """examples:
  flconfig client kits/site-1                     run the site of this kit
""",
    "submit": """examples:
  flconfig submit my-job                          as the POC's admin
  flconfig submit my-job --kit kits/admin@org     as another admin
""",
    "jobs": """examples:
  flconfig jobs                                   every job and the connected sites
  flconfig jobs 3f2a --json                       one job (an id or its start)
""",
    "abort": """examples:
  flconfig abort 3f2a
""",
    "logs": """examples:
  flconfig logs 3f2a --follow                     the server's log until the job ends
  flconfig logs 3f2a --site site-1
""",
    "download": """examples:
  flconfig download 3f2a -o results               model, TensorBoard files, logs into results/ID
""",
    "shutdown": """examples:
  flconfig shutdown --sites                       the server and every connected site
""",
}
