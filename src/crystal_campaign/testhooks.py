"""The one test seam: inert unless ``CRYSTAL_CAMPAIGN_TEST_HOOK_DIR`` is set (kill/resume and failure tests).

``reached(path)`` is called where a job is about to rename an output into place (its data fully
written to the temporary file) and where a chunk job starts sampling or relaxing a batch (with
``sample/{generator}/{batch}`` or ``relax/{generator}/{batch}``).
With ``CRYSTAL_CAMPAIGN_TEST_HOOK_DIR`` naming a directory, a path whose suffix is listed in
``<dir>/fail`` (one a line) raises, on every attempt; one listed in ``<dir>/pause`` writes
``<dir>/<suffix with / as _>.paused`` (JSON: pid, SLURM job id) and waits until ``<dir>/release``
exists, so a test kills the campaign or the job at a known point.
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


def reached(path: str | Path) -> None:
    directory = os.environ.get(HOOK_VARIABLE)
    if not directory:
        return
    if requested(directory, "fail", path):
        raise RuntimeError(f"test hook: failure requested at {path}")
    suffix = requested(directory, "pause", path)
    if suffix is None:
        return
    sentinel = Path(directory, suffix.replace("/", "_") + ".paused")
    sentinel.write_text(json.dumps({"pid": os.getpid(), "slurm_job_id": os.environ.get("SLURM_JOB_ID")}))
    while not Path(directory, "release").exists():
        time.sleep(0.2)
