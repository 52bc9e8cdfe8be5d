"""Writing the batch format with the standard library only.

Backends that run in their own environment (MatterGen) write batch files from there; this
module needs nothing beyond Python itself, so their runners import it by putting the repo's
``src`` on ``sys.path``. ``crystal_campaign.io`` re-exports these functions for the main rules.
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

from crystal_campaign import testhooks


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
        # mkstemp makes the file private (0600); results are shared with the group on clusters.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def structure_record(record_id: str, index: int, structure: Any, reason: str | None, **extra: Any) -> dict:
    """One record; ``structure`` is a pymatgen Structure or ``None``."""
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


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar_path(batch_path: str | Path) -> Path:
    """``x/0003.jsonl.gz`` -> ``x/0003.json``."""
    path = Path(batch_path)
    return path.with_name(path.name.removesuffix(".jsonl.gz") + ".json")


def write_batch_files(path: str | Path, records: list[dict], sidecar: dict) -> None:
    """Records, then the sidecar with the counts: its presence means the batch is whole."""
    write_records(path, records)
    n_generated = sum(record["structure"] is not None for record in records)
    counts = {"n_requested": len(records), "n_generated": n_generated, "n_failed": len(records) - n_generated}
    write_json(sidecar_path(path), {**sidecar, **counts})
