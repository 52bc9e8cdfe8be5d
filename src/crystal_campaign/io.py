"""File formats shared by every rule: batch files, JSON sidecars and settings-stamped tables.

A batch is ``{stem}.jsonl.gz`` (one record per requested structure, in batch order) plus a
``{stem}.json`` sidecar. A record is a JSON object with at least ``id``, ``index``,
``structure`` (``pymatgen Structure.as_dict()``, so partial occupancies survive, or ``null``)
and ``reason`` (``null``, or why there is no usable structure). Any process that can write
JSON can produce a batch, which is how backends in their own environments plug in.
Every write goes to a temporary file in the same directory and is renamed into place, so a
killed job never leaves a truncated file under the final name.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pymatgen.core import Structure

# The batch writers need only the standard library: runners in other environments use them too.
from crystal_campaign.batch_files import atomic_path as atomic_path
from crystal_campaign.batch_files import file_sha256 as file_sha256
from crystal_campaign.batch_files import sidecar_path as sidecar_path
from crystal_campaign.batch_files import structure_record as structure_record
from crystal_campaign.batch_files import write_batch_files as write_batch_files
from crystal_campaign.batch_files import write_json as write_json
from crystal_campaign.batch_files import write_records as write_records

SETTINGS_KEY = b"crystal_campaign.settings"


class JobError(RuntimeError):
    """A job failure the user can fix: its message is one line saying what to do (shown without traceback)."""


class BatchError(RuntimeError):
    """The batch's own draw failed and would fail alike on a retry (same seed): recorded at once."""


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def read_records(path: str | Path) -> list[dict]:
    """Records of a batch file, with ``structure`` turned back into a pymatgen Structure."""
    with gzip.open(path, "rt") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    for record in records:
        if record.get("structure") is not None:
            record["structure"] = Structure.from_dict(record["structure"])
    return records


def write_table(path: str | Path, table: pd.DataFrame, settings: dict) -> None:
    """Parquet table whose schema metadata records the settings that produced it."""
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    metadata = {
        **(arrow.schema.metadata or {}),
        SETTINGS_KEY: json.dumps(settings, sort_keys=True, default=str),
    }
    with atomic_path(path) as tmp:
        pq.write_table(arrow.replace_schema_metadata(metadata), tmp)


def read_table(path: str | Path) -> tuple[pd.DataFrame, dict]:
    arrow = pq.read_table(path)
    settings = json.loads((arrow.schema.metadata or {}).get(SETTINGS_KEY, b"{}"))
    return arrow.to_pandas(), settings


# Scheduler facts every job log starts with, so a log proves where and how its job ran.
ENVIRONMENT_VARIABLES = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_JOB_PARTITION", "CUDA_VISIBLE_DEVICES")


def environment_line() -> str:
    values = [f"{name}={os.environ[name]}" for name in ENVIRONMENT_VARIABLES if name in os.environ]
    return " ".join([f"host={socket.gethostname()}", f"pid={os.getpid()}", *values])


@contextlib.contextmanager
def log_to(path: str | Path) -> Iterator[None]:
    """Send a job's Python output, warnings and logging to its Snakemake log file."""
    import logging
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
