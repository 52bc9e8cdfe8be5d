"""Files every rule shares: batch files read as pymatgen structures, settings-stamped tables,
structure files from elsewhere (CIF, extxyz, POSCAR), job logs and the errors jobs report.

The batch contract (record and sidecar shapes, the one writer) is ``crystal_campaign.batch_files``,
re-exported here; every write goes to a temporary file and is renamed into place.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pymatgen.core import Structure

from crystal_campaign import chunks

# The batch contract needs only the standard library: runners in other environments use it too.
from crystal_campaign.batch_files import atomic_path as atomic_path
from crystal_campaign.batch_files import file_sha256 as file_sha256
from crystal_campaign.batch_files import read_json as read_json
from crystal_campaign.batch_files import read_record_dicts as read_record_dicts
from crystal_campaign.batch_files import read_sidecar as read_sidecar
from crystal_campaign.batch_files import sidecar_path as sidecar_path
from crystal_campaign.batch_files import structure_record as structure_record
from crystal_campaign.batch_files import write_batch as write_batch
from crystal_campaign.batch_files import write_json as write_json
from crystal_campaign.batch_files import write_records as write_records

SETTINGS_KEY = b"crystal_campaign.settings"


class JobError(RuntimeError):
    """A job failure the user can fix: its message is one line saying what to do (shown without traceback)."""


class BatchError(RuntimeError):
    """The batch's own draw failed and would fail alike on a retry (same seed): recorded at once."""


def read_records(path: str | Path) -> list[dict]:
    """Records of a batch file, with ``structure`` turned back into a pymatgen Structure."""
    records = read_record_dicts(path)
    for record in records:
        if record.get("structure") is not None:
            record["structure"] = Structure.from_dict(record["structure"])
    return records


def read_chunk_records(manifest_path: str | Path) -> list[dict]:
    """``read_records`` of every batch a chunk manifest names, in batch order."""
    return [record for path in chunks.manifest_paths(manifest_path) for record in read_records(path)]


def write_table(path: str | Path, table: pd.DataFrame, settings: dict) -> None:
    """Parquet table whose schema metadata records the settings that produced it."""
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    metadata = {
        **(arrow.schema.metadata or {}),
        SETTINGS_KEY: json.dumps(settings, sort_keys=True, default=str),
    }
    with atomic_path(path) as tmp:
        pq.write_table(arrow.replace_schema_metadata(metadata), tmp)


def read_table(
    path: str | Path, columns: list[str] | None = None, filters: list[tuple] | None = None
) -> tuple[pd.DataFrame, dict]:
    """A ``write_table`` table (only ``columns``, only rows passing pyarrow ``filters``) and its settings."""
    arrow = pq.read_table(path, columns=columns, filters=filters)
    return arrow.to_pandas(), schema_settings(arrow.schema)


def read_table_settings(path: str | Path) -> dict:
    """The settings a ``write_table`` table records, without reading its rows."""
    return schema_settings(pq.read_schema(path))


def schema_settings(schema: pa.Schema) -> dict:
    return json.loads((schema.metadata or {}).get(SETTINGS_KEY, b"{}"))


def table_columns(path: str | Path) -> list[str]:
    return pq.read_schema(path).names


EXTXYZ_SUFFIXES = {".extxyz", ".xyz"}


def matching_files(patterns: list[str]) -> list[str]:
    """Files named by paths, directories or glob patterns, sorted, without duplicates."""
    files: set[str] = set()
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            files.update(str(p) for p in path.iterdir() if p.is_file())
        else:
            files.update(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    return sorted(files)


def read_structures(path: str) -> list[Structure]:
    """Every structure in a CIF, extxyz or pymatgen-readable file (POSCAR, ...); raises if unreadable."""
    suffix = Path(path).suffix.lower()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if suffix == ".cif":
            from pymatgen.io.cif import CifParser

            return CifParser(path).parse_structures(primitive=False, on_error="raise")
        if suffix in EXTXYZ_SUFFIXES:
            from ase.io import read
            from pymatgen.io.ase import AseAtomsAdaptor

            return [AseAtomsAdaptor.get_structure(atoms) for atoms in read(path, index=":", format="extxyz")]
        return [Structure.from_file(path)]


class Progress:
    """Log ``what: done/total`` at most every ``every_s`` seconds and when all are done, so a job's
    log shows how far a long step got (``tick`` logs a still-working detail at the same pace)."""

    def __init__(self, what: str, total: int, every_s: float = 10.0) -> None:
        self.what, self.total, self.every_s = what, total, every_s
        self.done = 0
        self.start = self.last = time.monotonic()

    def advance(self, n: int = 1, detail: str = "") -> None:
        self.done += n
        self._log(detail, force=self.done >= self.total)

    def tick(self, detail: str) -> None:
        self._log(detail, force=False)

    def _log(self, detail: str, force: bool) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every_s:
            self.last = now
            suffix = f" ({detail})" if detail else ""
            logging.info(
                "%s: %d/%d done after %.0f s%s", self.what, self.done, self.total, now - self.start, suffix
            )


# Scheduler facts every job log starts with, so a log proves where and how its job ran.
ENVIRONMENT_VARIABLES = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_JOB_PARTITION", "CUDA_VISIBLE_DEVICES")


@contextlib.contextmanager
def replaced_folder(path: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``path``; it replaces ``path`` as a whole only if the
    block succeeds, so a folder output is never half old, half new."""
    folder = Path(path)
    staging = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def environment_line() -> str:
    values = [f"{name}={os.environ[name]}" for name in ENVIRONMENT_VARIABLES if name in os.environ]
    return " ".join([f"host={socket.gethostname()}", f"pid={os.getpid()}", *values])


@contextlib.contextmanager
def log_to(path: str | Path) -> Iterator[None]:
    """Send a job's Python output, warnings and logging to its Snakemake log file."""
    import sys

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle, contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
        logging.basicConfig(stream=handle, level=logging.INFO, force=True)
        logging.info("job: %s", environment_line())
        try:
            yield
        except JobError as error:
            print(f"error: {error}", file=handle)
            print(f"error: {error} (log: {path})", file=sys.__stderr__)
            raise SystemExit(1) from None
        except BaseException:
            import traceback

            traceback.print_exc(file=handle)
            print(f"failed; see {path}", file=sys.__stderr__)
            raise
