"""Around every Snakemake job: where it ran, and a batch that keeps failing.

A sampling or relax job that raises on its last attempt (``jobs.retries`` retries) writes its batch
as failure rows whose reason names the error and the job's log, so the campaign completes and the
tables count the failure. Deleting that batch's files (or ``--forcerun``) samples it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pymatgen.core import Structure

from crystal_campaign import testhooks
from crystal_campaign.generators.base import BatchOutput, Sample, write_sample_batch
from crystal_campaign.io import BatchError, JobError
from crystal_campaign.relax.base import RelaxResult, run_relax_job

FAILED = "batch failed"


def run_or_record_failure(
    work: Callable[[], None], record: Callable[[str], None], attempt: int, attempts: int, log: str
) -> None:
    """Run ``work``; on the last of ``attempts`` attempts an error becomes ``record(reason)`` instead.

    A ``JobError`` (no model, no environment: the user must act) always stops the job with its one
    line, since it would fail every batch alike and hide a set-up problem in the tables. A
    ``BatchError`` is recorded at once: a retry would draw the same batch and fail the same way.
    """
    try:
        testhooks.reached(log)
        work()
    except JobError:
        raise
    except Exception as error:
        if attempt < attempts and not isinstance(error, BatchError):
            raise
        attempts_made = f"{attempt} attempt{'s' if attempt > 1 else ''}"
        reason = f"{FAILED} after {attempts_made}: {type(error).__name__}: {error} (log: {log})"
        logging.exception("recording the batch as failed: %s", reason)
        record(reason)


class FailedRelaxer:
    """Stands in for a relaxer that kept failing: every structure it would relax is a failed row."""

    def __init__(self, settings: dict, reason: str) -> None:
        self._settings = settings
        self.reason = reason

    def settings(self) -> dict:
        return self._settings

    def relax(self, structures: list[Structure]) -> list[RelaxResult]:
        return [RelaxResult("failed", reason=self.reason) for _ in structures]


def write_failed_relax_batch(settings: dict, reason: str, sample_path: str, output_path: str) -> None:
    """The batch's relaxations as failed rows, in the standard format, so every table counts them."""
    run_relax_job(FailedRelaxer(settings, reason), sample_path, output_path, failed=reason)


def write_failed_sample_batch(
    path: str, settings: dict, campaign: str, batch: int, n_requested: int, reason: str
) -> None:
    """The batch as ``n_requested`` failure rows, in the standard format, so every table counts them."""
    samples = [Sample(None, reason) for _ in range(n_requested)]
    write_sample_batch(path, campaign, settings, batch, BatchOutput(samples), 0.0, {}, failed=reason)
