"""The sample and relax chunk jobs (``chunks``), and a batch that keeps failing.

A chunk job makes each of its batches that is missing or stale and reuses the others. A batch
whose sampling or relaxation raises on the job's last attempt (``jobs.retries`` retries) is
written as failure rows whose reason names the error and the job's log, so the campaign completes
and the tables count the failure; earlier attempts fail the job, and the retry reuses the batches
made before. Deleting a failed batch's files (or ``--forcerun``) makes it again.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

from pymatgen.core import Structure

from crystal_campaign import chunks, generators, relax, testhooks
from crystal_campaign.generators.base import BatchOutput, Sample, write_sample_batch
from crystal_campaign.io import BatchError, JobError, read_json
from crystal_campaign.relax.base import RelaxResult, run_relax_job

FAILED = "batch failed"


@dataclass(frozen=True)
class Attempt:
    """Which attempt of its Snakemake job a chunk job is, of how many, and where it logs."""

    attempt: int
    attempts: int
    log: str


def run_or_record_failure(
    work: Callable[[], None], record: Callable[[str], None], attempt: Attempt, hook: str
) -> None:
    """Run ``work``; on the job's last attempt an error becomes ``record(reason)`` instead.

    A ``JobError`` (no model, no environment: the user must act) always stops the job with its one
    line, since it would fail every batch alike and hide a set-up problem in the tables. A
    ``BatchError`` is recorded at once: a retry would draw the same batch and fail the same way.
    ``hook`` names the batch to the test seam (``testhooks``), e.g. ``sample/rss/0001``.
    """
    try:
        testhooks.reached(hook)
        work()
    except JobError:
        raise
    except Exception as error:
        if attempt.attempt < attempt.attempts and not isinstance(error, BatchError):
            raise
        attempts_made = f"{attempt.attempt} attempt{'s' if attempt.attempt > 1 else ''}"
        reason = f"{FAILED} after {attempts_made}: {type(error).__name__}: {error} (log: {attempt.log})"
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


def write_failed_relax_batch(
    settings: dict, own_settings: dict, reason: str, sample_path: str, output_path: str
) -> None:
    """The batch's relaxations as failed rows, in the standard format, so every table counts them."""
    run_relax_job(FailedRelaxer(settings, reason), sample_path, output_path, own_settings, failed=reason)


def write_failed_sample_batch(
    path: str, settings: dict, campaign: str, batch: int, inputs: list[str], reason: str
) -> None:
    """The batch as failure rows (one per input file, else ``batch_size``), in the standard format,
    so every table counts them."""
    samples = [Sample(None, reason) for _ in range(len(inputs) or settings["batch_size"])]
    output = BatchOutput(samples)
    write_sample_batch(
        path, campaign, settings, batch, output, 0.0, {}, failed=reason, inputs=chunks.file_marks(inputs)
    )


def run_batches(
    stage: str,
    generator: str,
    paths: dict[int, str],
    current: Callable[[int], bool],
    make: Callable[[int], None],
    record_failure: Callable[[int, str], None],
    attempt: Attempt,
) -> None:
    """Make every batch of a chunk (``paths``: batch -> its records file) that is not ``current``."""
    made = 0
    for batch in paths:
        if current(batch):
            continue
        hook = f"{stage}/{generator}/{batch:04d}"
        run_or_record_failure(
            functools.partial(make, batch), functools.partial(record_failure, batch), attempt, hook
        )
        made += 1
    logging.info("%s: %d of %d batches made, the others reused", stage, made, len(paths))


def run_sample_chunk(
    settings: dict, campaign: str, batches: list[int], manifest: str, attempt: Attempt
) -> None:
    """Sample the chunk's batches that are missing or were made otherwise (other settings, seed or
    input files); write the chunk's manifest."""
    folder = chunks.batch_folder(manifest)
    paths = {batch: chunks.batch_path(folder, batch) for batch in batches}
    inputs = {batch: generators.input_files(settings, batch) for batch in batches}

    def current(batch: int) -> bool:
        expected = {
            "campaign": campaign,
            "settings": settings,
            "seed": generators.derive_seed(campaign, settings["name"], batch),
            "inputs": chunks.file_marks(inputs[batch]),
        }
        return chunks.current_sidecar(paths[batch], expected) is not None

    run_batches(
        "sample",
        settings["name"],
        paths,
        current,
        lambda batch: generators.sample(settings, campaign, batch, paths[batch]),
        lambda batch, reason: write_failed_sample_batch(
            paths[batch], settings, campaign, batch, inputs[batch], reason
        ),
        attempt,
    )
    chunks.write_manifest(manifest, settings["name"], list(paths.values()))


def run_relax_chunk(
    own_settings: dict, settings: dict, sample_manifest: str, manifest: str, attempt: Attempt
) -> None:
    """Relax the chunk's batches that are missing or were relaxed otherwise (other relax settings,
    or another sample batch than the one there now); the potential is loaded once, and only if a
    batch needs it. ``own_settings``: the job's params; ``settings``: with its execution keys."""
    generator = read_json(sample_manifest)["generator"]
    samples = {entry["sidecar"]["batch"]: entry["path"] for entry in chunks.read_manifest(sample_manifest)}
    folder = chunks.batch_folder(manifest)
    paths = {batch: chunks.batch_path(folder, batch) for batch in samples}
    relaxer = functools.cache(lambda: relax.get_relaxer(settings))

    def current(batch: int) -> bool:
        expected = {"settings": own_settings, "inputs": chunks.file_marks([samples[batch]])}
        return chunks.current_sidecar(paths[batch], expected) is not None

    run_batches(
        "relax",
        generator,
        paths,
        current,
        lambda batch: run_relax_job(relaxer(), samples[batch], paths[batch], own_settings),
        lambda batch, reason: write_failed_relax_batch(
            settings, own_settings, reason, samples[batch], paths[batch]
        ),
        attempt,
    )
    chunks.write_manifest(manifest, generator, list(paths.values()))
