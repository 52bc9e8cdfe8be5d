"""Test-only hook of the kill/resume and failure tests; a no-op unless its environment variable is set.

With ``CRYSTAL_CAMPAIGN_TEST_HOOK_DIR`` naming a directory, a job about to rename an output into place
(``io.atomic_path``), its data fully written to the temporary file, looks for its path's suffix in
``<dir>/pause`` (one a line): if listed, it writes ``<dir>/<suffix with / as _>.paused`` (JSON: pid,
SLURM job id) and waits until ``<dir>/release`` exists, so a test kills the campaign or the job at a
known point. A sampling or relax job whose log path's suffix is listed in ``<dir>/fail`` raises
before its work, on every attempt.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

HOOK_VARIABLE = "CRYSTAL_CAMPAIGN_TEST_HOOK_DIR"


def requested(directory: str, kind: str, path: str | Path) -> str | None:
    request = Path(directory, kind)
    suffixes = request.read_text().split() if request.exists() else []
    return next((suffix for suffix in suffixes if str(path).endswith(suffix)), None)


def before_rename(path: str | Path) -> None:
    directory = os.environ.get(HOOK_VARIABLE)
    if not directory:
        return
    suffix = requested(directory, "pause", path)
    if suffix is None:
        return
    sentinel = Path(directory, suffix.replace("/", "_") + ".paused")
    sentinel.write_text(json.dumps({"pid": os.getpid(), "slurm_job_id": os.environ.get("SLURM_JOB_ID")}))
    while not Path(directory, "release").exists():
        time.sleep(0.2)


def fail_if_requested(log: str) -> None:
    directory = os.environ.get(HOOK_VARIABLE)
    if directory and requested(directory, "fail", log):
        raise RuntimeError(f"test hook: failure requested for the job logging to {log}")
