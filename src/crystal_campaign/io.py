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
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pymatgen.core import Structure

from crystal_campaign import testhooks

SETTINGS_KEY = b"crystal_campaign.settings"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        testhooks.before_rename(path)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def structure_record(
    record_id: str, index: int, structure: Structure | None, reason: str | None, **extra: Any
) -> dict:
    return {
        "id": record_id,
        "index": index,
        "structure": structure.as_dict() if structure is not None else None,
        "reason": reason,
        **extra,
    }


def write_records(path: str | Path, records: Iterable[dict]) -> None:
    # No name or time in the gzip header: the same records always give the same bytes and SHA-256.
    with (
        atomic_path(path) as tmp,
        open(tmp, "wb") as file,
        gzip.GzipFile(filename="", mode="wb", fileobj=file, mtime=0) as raw,
        io.TextIOWrapper(raw) as handle,
    ):
        for record in records:
            handle.write(json.dumps(record, default=str) + "\n")


def read_records(path: str | Path) -> list[dict]:
    """Records of a batch file, with ``structure`` turned back into a pymatgen Structure."""
    with gzip.open(path, "rt") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    for record in records:
        if record.get("structure") is not None:
            record["structure"] = Structure.from_dict(record["structure"])
    return records


def sidecar_path(batch_path: str | Path) -> Path:
    """``x/0003.jsonl.gz`` -> ``x/0003.json``."""
    path = Path(batch_path)
    return path.with_name(path.name.removesuffix(".jsonl.gz") + ".json")


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


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def log_to(path: str | Path) -> Iterator[None]:
    """Send a job's Python output, warnings and logging to its Snakemake log file."""
    import logging
    import sys

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle, contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
        logging.basicConfig(stream=handle, level=logging.INFO, force=True)
        from crystal_campaign.jobs import environment_line

        logging.info("job: %s", environment_line())
        try:
            yield
        except BaseException:
            import traceback

            traceback.print_exc(file=handle)
            print(f"failed; see {path}", file=sys.__stderr__)
            raise
