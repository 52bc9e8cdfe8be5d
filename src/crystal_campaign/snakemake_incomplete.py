"""Keep what an interrupted run finished: outputs that Snakemake still marks incomplete.

Snakemake marks a job's outputs incomplete when it starts the job and unmarks them once it has
processed the job's end. Interrupted (Ctrl-C or ``kill -INT`` of Snakemake), it waits for the
running local jobs to finish but no longer processes them, so batches written in full stay marked
and the next run does them again ("Forced execution"). Every output of this workflow is written to
a temporary file and renamed into place, so an output that exists and is newer than its mark is
whole: before Snakemake plans, such a mark is removed (the mark's layout is that of Snakemake's
file persistence backend, ``snakemake.persistence.file``: the path, URL-safe base64, cut into
``@``-prefixed chunks when longer than a file name may be).
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

MARKS = Path(".snakemake") / "incomplete"
NOT_A_MARK = "migration_underway"


def marked_path(mark: Path, marks: Path = MARKS) -> str:
    """The output path a mark stands for."""
    encoded = "".join(part.removeprefix("@") for part in mark.relative_to(marks).parts)
    return base64.urlsafe_b64decode(encoded).decode()


def finished_marks(marks: Path = MARKS) -> list[tuple[Path, str]]:
    """(mark, output) of every marked output that exists and was renamed into place after its mark."""
    found = []
    for directory, _, names in os.walk(marks):
        for name in names:
            mark = Path(directory, name)
            if name == NOT_A_MARK:
                continue
            output = Path(marked_path(mark, marks))
            if output.exists() and output.stat().st_mtime >= mark.stat().st_mtime:
                found.append((mark, str(output)))
    return found


def keep_finished_outputs(workflow) -> None:
    """Unmark the outputs an interrupted run finished (in Snakemake's main process only, with its
    default file persistence), saying how many on stderr."""
    from snakemake.settings.enums import PersistenceBackend

    if (
        not workflow.is_main_process
        or workflow.workflow_settings.persistence_backend != PersistenceBackend.FILE
    ):
        return
    kept = finished_marks()
    for mark, _ in kept:
        mark.unlink(missing_ok=True)
    if kept:
        outputs = ", ".join(output for _, output in kept)
        print(f"kept {len(kept)} output(s) an interrupted run finished in full: {outputs}", file=sys.stderr)
