"""Materials Project through the real mp-api client, cached on disk per chemical system.

A campaign needs, per chemical system, the MP structures (novelty) and the GGA/GGA+U
ComputedStructureEntries with MP2020 corrections (stability). Both are fetched with
``MPRester`` and written to ``{cache_dir}/{database_version}/{gnome|no-gnome}/{chemsys}.json.gz``,
so a rerun (or an offline compute node after ``crystal-campaign prefetch``) reads them back.

The API key is read only from the configured environment variable (``MP_API_KEY`` by default)
and is scrubbed from every message this module produces. Timeouts, rate limits and server
errors are retried with exponential backoff; a system that still fails is reported with its
reason and never cached, so the next run tries again.
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import os
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

from pymatgen.core import Composition, Structure

from crystal_campaign import io

LOG = logging.getLogger(__name__)
LATEST_FILE = "latest.json"
# Statuses that retrying cannot fix: a bad request or a key the server refuses.
PERMANENT_STATUS = ("status code 400", "status code 401", "status code 403", "status code 404")


class MPError(RuntimeError):
    """A Materials Project problem, with the API key already scrubbed from the message."""


def chemsys_of(elements: Iterable[str]) -> str:
    return "-".join(sorted(set(elements)))


def subsystems(chemsys: str) -> list[str]:
    """The system and all its subsystems, e.g. Na-Cl -> Cl, Na, Cl-Na (sorted element order)."""
    elements = sorted(set(chemsys.split("-")))
    return [
        "-".join(combo)
        for size in range(1, len(elements) + 1)
        for combo in itertools.combinations(elements, size)
    ]


def api_key(settings: dict) -> str | None:
    return os.environ.get(settings["api_key_env"]) or None


def scrub(text: str, settings: dict) -> str:
    """``text`` with the API key (if any is set) replaced, for messages, logs and tables."""
    key = api_key(settings)
    return text.replace(key, "<MP API key>") if key else text


class MPCache:
    """Per chemical system JSON files for one database version and one include_gnome choice."""

    def __init__(self, settings: dict, database_version: str) -> None:
        self.root = Path(settings["cache_dir"])
        self.database_version = database_version
        self.folder = self.root / database_version / ("gnome" if settings["include_gnome"] else "no-gnome")

    def path(self, chemsys: str) -> Path:
        return self.folder / f"{chemsys}.json.gz"

    def has(self, chemsys: str) -> bool:
        return self.path(chemsys).exists()

    def load(self, chemsys: str) -> dict:
        with gzip.open(self.path(chemsys), "rt") as handle:
            return json.load(handle)

    def store(self, chemsys: str, data: dict) -> None:
        with io.atomic_path(self.path(chemsys)) as tmp, gzip.open(tmp, "wt") as handle:
            json.dump(data, handle)


def cached_versions(settings: dict) -> list[str]:
    root = Path(settings["cache_dir"])
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


class MPClient:
    """MPRester calls with retries; builds the client lazily (its constructor already calls the API)."""

    def __init__(self, settings: dict) -> None:
        self.settings = settings
        self._rester = None

    def _mprester(self):
        if self._rester is None:
            from mp_api.client import MPRester

            key = api_key(self.settings)
            if key is None:
                raise MPError(f"environment variable {self.settings['api_key_env']} is not set")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._rester = MPRester(
                    api_key=key,
                    endpoint=self.settings.get("endpoint") or None,
                    use_document_model=False,
                    mute_progress_bars=True,
                )
        return self._rester

    def _with_retries(self, what: str, call):
        retries = self.settings["max_retries"]
        for attempt in itertools.count():
            try:
                return call()
            except MPError:
                raise
            except Exception as error:  # requests, urllib3 and mp-api raise many types for one outage
                message = " ".join(scrub(f"{type(error).__name__}: {error}", self.settings).split())
                self._rester = None  # a fresh session after a broken connection
                if any(status in message for status in PERMANENT_STATUS) or attempt == retries:
                    raise MPError(f"{what}: {message}") from None
                delay = self.settings["backoff_s"] * 2**attempt
                LOG.warning(
                    "%s failed (%s); retry %d of %d in %.1f s",
                    what,
                    message,
                    attempt + 1,
                    retries,
                    delay,
                )
                time.sleep(delay)

    def _search(self, route: str):
        """``materials.{route}.search`` with this source's timeout (mp-api's default is 20 s)."""
        search = getattr(self._mprester().materials, route).search
        search.__self__.timeout = self.settings["timeout_s"]
        return search

    def database_version(self) -> str:
        return self._with_retries("database version", lambda: self._mprester().db_version)

    def fetch(self, chemsys: str) -> dict:
        """Structures and GGA/GGA+U entries of exactly this chemical system."""

        def summary():
            return self._search("summary")(
                chemsys=chemsys,
                include_gnome=self.settings["include_gnome"],
                fields=["material_id", "structure"],
            )

        def thermo():
            return self._search("thermo")(
                chemsys=chemsys,
                thermo_types=[self.settings["thermo_type"]],
                fields=["material_id", "entries"],
            )

        docs = self._with_retries(f"{chemsys} structures", summary)
        thermo_docs = self._with_retries(f"{chemsys} entries", thermo)
        # The hull uses the same materials as novelty: without GNoME, its entries are left out too.
        known = {str(d["material_id"]) for d in docs}
        return {
            "chemsys": chemsys,
            "structures": [{"material_id": str(d["material_id"]), "structure": d["structure"]} for d in docs],
            "entries": [
                {"material_id": str(d["material_id"]), "entry": entry}
                for d in thermo_docs
                if str(d["material_id"]) in known
                for entry in (d.get("entries") or {}).values()
                if entry
            ],
        }


def resolve_database_version(settings: dict, client: MPClient | None = None) -> tuple[str | None, str | None]:
    """(version, reason): pinned, else asked of MP when fetching is allowed, else the newest prefetched."""
    if settings["database_version"] != "latest":
        return settings["database_version"], None
    latest = Path(settings["cache_dir"]) / LATEST_FILE
    if settings["fetch_missing"]:
        try:
            version = (client or MPClient(settings)).database_version()
            io.write_json(latest, {"database_version": version})
            return version, None
        except MPError as error:
            reason = str(error)
    else:
        reason = "fetch_missing is false"
    if latest.exists():
        return io.read_json(latest)["database_version"], None
    versions = cached_versions(settings)
    if versions:
        return versions[-1], None
    return None, f"no Materials Project database version: {reason} and nothing is cached"


def ensure_systems(
    settings: dict, database_version: str, systems: Iterable[str], client: MPClient | None = None
) -> tuple[dict[str, dict], dict[str, str]]:
    """Cached data per system, fetching what is missing when allowed; failures map system -> reason."""
    cache = MPCache(settings, database_version)
    client = client or MPClient(settings)
    data, failed = {}, {}
    for chemsys in sorted(set(systems)):
        if cache.has(chemsys):
            data[chemsys] = cache.load(chemsys)
        elif not settings["fetch_missing"]:
            failed[chemsys] = "not in the Materials Project cache and fetch_missing is false (run prefetch)"
        else:
            try:
                fetched = client.fetch(chemsys)
            except MPError as error:
                failed[chemsys] = str(error)
                LOG.warning("Materials Project %s failed: %s", chemsys, error)
                continue
            cache.store(
                chemsys,
                {**fetched, "database_version": database_version, "include_gnome": settings["include_gnome"]},
            )
            data[chemsys] = cache.load(chemsys)
    return data, failed


def lookup(reference_sidecar: dict, systems: Iterable[str]) -> tuple[list[dict], dict[str, str], list[dict]]:
    """Cached (or fetched) data of ``systems`` for every MP source the reference snapshot pinned.

    Returns the per-system data, the systems that failed (-> reason), and what was used per
    source (database version, include_gnome, failures; never the key) for the tables.
    """
    systems = set(systems)
    found, failed, used = [], {}, []
    for remote in reference_sidecar.get("mp", []):
        if remote["database_version"] is None:
            failed.update(dict.fromkeys(systems, remote["problem"]))
            continue
        data, missing = ensure_systems(remote["settings"], remote["database_version"], systems)
        found += [data[chemsys] for chemsys in sorted(data)]
        failed.update(missing)
        used.append({k: v for k, v in remote.items() if k != "settings"} | {"failed": missing})
    return found, failed, used


def reference_structures(data: dict) -> list[tuple[str, Structure]]:
    return [(f"mp:{d['material_id']}", Structure.from_dict(d["structure"])) for d in data["structures"]]


def reference_entries(data: dict) -> list:
    from pymatgen.entries.computed_entries import ComputedStructureEntry

    entries = []
    for item in data["entries"]:
        entry = ComputedStructureEntry.from_dict(item["entry"])
        entry.entry_id = f"mp:{item['material_id']}"
        entries.append(entry)
    return entries


def record(settings: dict, database_version: str | None) -> dict:
    """What identifies the MP reference in every table (never the key)."""
    return {
        "source": "mp",
        "database_version": database_version,
        "include_gnome": settings["include_gnome"],
        "thermo_type": settings["thermo_type"],
        "endpoint": settings.get("endpoint") or "default",
    }


def formula_systems(formulas: Iterable[str]) -> set[str]:
    return {chemsys_of(el.symbol for el in Composition(f).elements) for f in formulas}


def structures_systems(paths: Iterable[str | Path]) -> set[str]:
    """Chemical systems of the (relaxed) structures in batch files."""
    systems = set()
    for path in paths:
        for item in io.read_records(path):
            if item.get("structure") is not None:
                systems.add(item["structure"].composition.chemical_system)
    return systems
