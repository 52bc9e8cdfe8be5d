"""Deduplication: MatterGen's uniqueness walk (``get_unique``), with far fewer ``fit`` calls,
per generator and across the campaign, sharded by chemical system.

Classes. MatterGen walks structures in order and keeps a structure ``x`` unless ``fit(x, u)``
holds for an earlier unique structure ``u`` (the candidate first: ``disordered`` is not
symmetric, and pymatgen's ``fit`` is not always). Here each structure joins the class of the first
earlier leader ``u`` with ``fit(x, u)``, or leads a class of its own: the leaders are exactly
MatterGen's unique structures. On symmetric pairs these are also pymatgen's ``group_structures``
classes, which call ``fit(leader, x)``.

Walk order (stable class ids). A fresh campaign is walked in campaign order (generator in config
order, batch index, index in batch). Later runs walk every structure walked before in its earlier
position, then the new ones in campaign order (``walk_order``). A structure's class depends only
on the structures walked before it, so growing a campaign (more batches for any generator, a
generator appended to the config) never changes an existing structure's class or its leader id.

Shards. A structure's shard is the hash of its chemical system; buckets (equal composition
hashes) never span two chemical systems, so each shard's classes are exact on their own.

Growth. Each shard keeps its classes (every walk's leaders with their reduced structures) in a
state file beside the walk order; a later run reads only the reduced chunks it has not read as they
are now, and walks only the structures of batches it has not walked (a grown generator's renamed
last chunk holds batches walked before: they are recognised by their relaxed file), after the
others, which by the walk-order rule gives the classes of walking everything again. A changed
matcher setting or shard count, or a batch walked before that changed or left the campaign, walks
everything again.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections import ChainMap
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from crystal_campaign import chunks, io
from crystal_campaign.matching import (
    MatchCounter,
    build_matcher,
    matcher_settings,
    read_reduced_batches,
    reduce_structure,
    reduced_of,
)
from crystal_campaign.pruning import LeaderBucket, Reduced
from crystal_campaign.schema import section_defaults


class LeaderWalk:
    """The class leaders of a walk so far, in walk order: walking more structures later gives each
    the leader one walk over all would give it, since a structure's class depends only on the
    leaders walked before it. Pickles with its leaders' pruning data (not their structures)."""

    def __init__(self) -> None:
        self.buckets: dict[Hashable, LeaderBucket] = {}
        self.cross = LeaderBucket(prunes=False)  # leaders that may match across formulas (``crosses``)
        self.rank: dict[Hashable, int] = {}  # leader -> its walk position
        self.walked = 0

    def leader_of(self, key: Hashable, item: Reduced, fit: Callable[[Hashable, Hashable], bool], ltol: float):
        """Walk ``item`` (named ``key``): the first earlier leader ``u`` with ``fit(key, u)``, else
        ``key`` itself.

        Structures are bucketed by formula, except those that ``crosses`` (partial occupancies
        under ``disordered``), which are compared with every earlier leader, and every later
        structure with them.
        """
        bucket = self.buckets.get(item.key)
        pools = [*self.buckets.values(), self.cross] if item.crosses else [bucket, self.cross]
        candidates = [leader for pool in pools if pool is not None for leader in pool.candidates(item, ltol)]
        if item.crosses or self.cross.indices:
            candidates.sort(key=self.rank.__getitem__)  # first leader in walk order wins
        leader = next((c for c in candidates if fit(key, c)), key)
        if leader == key:
            self.rank[key] = self.walked
            if item.crosses:
                self.cross.add(key, item)
            else:
                self.buckets.setdefault(item.key, LeaderBucket()).add(key, item)
        self.walked += 1
        return leader


def leader_classes(
    reduced: Sequence[Reduced],
    fit: Callable[[int, int], bool],
    ltol: float,
    order: Sequence[int] | None = None,
) -> dict[int, int]:
    """Map each index in ``order`` (default: all, in order) to the index of its class leader."""
    walk = LeaderWalk()
    return {
        i: walk.leader_of(i, reduced[i], fit, ltol) for i in (range(len(reduced)) if order is None else order)
    }


def group_indices(structures: Sequence[Structure], matcher: StructureMatcher) -> tuple[list[int], int]:
    """Class leader index per structure (MatterGen's uniqueness walk, module docstring) and the fit
    calls made."""
    return group_reduced([reduce_structure(matcher, s) for s in structures], matcher)


def group_reduced(reduced: Sequence[Reduced], matcher: StructureMatcher) -> tuple[list[int], int]:
    """``group_indices`` of structures reduced already."""
    counter = MatchCounter(matcher)
    classes = leader_classes(
        reduced, lambda i, j: counter.screened_fit(reduced[i], reduced[j]), ltol=matcher.ltol
    )
    return [classes[i] for i in range(len(reduced))], counter.calls


def walk_order(ids: Sequence[str], walked_before: Sequence[str] = ()) -> list[int]:
    """Positions of ``ids`` (campaign order) in walk order: ids walked in an earlier run first, in
    their earlier order, then the others in campaign order."""
    position = {identifier: p for p, identifier in enumerate(ids)}
    earlier = [position[i] for i in walked_before if i in position]
    seen = set(earlier)
    return earlier + [p for p in range(len(ids)) if p not in seen]


def shard_of(chemsys: str, shards: int) -> int:
    """Fixed shard of a chemical system: buckets (equal keys) never span two chemical systems."""
    return int.from_bytes(hashlib.sha256(chemsys.encode()).digest()[:8], "big") % shards


# Recorded with every dedup table and state: a state walked another way is walked again.
WALK = "fit(candidate, earlier leader), MatterGen's get_unique"
CLASS_COLUMNS = ["id", "class_generator", "unique_generator", "class_all", "unique_all", "shared"]


@dataclass
class Classes:
    """Match classes of the structures walked so far, per generator and across all; ``walk`` adds
    more after them, giving each the class one walk over all would (a dedup shard's state)."""

    within: dict[str, LeaderWalk] = field(default_factory=dict)
    across: LeaderWalk = field(default_factory=LeaderWalk)
    leaders: dict[str, Reduced] = field(default_factory=dict)  # of either walk: what later fits compare
    # across-class leader -> the generators its class holds
    generators_of_class: dict[str, set[str]] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)  # walk order
    class_generator: dict[str, str] = field(default_factory=dict)
    class_all: dict[str, str] = field(default_factory=dict)

    def walk(
        self, records: Sequence[dict], matcher: StructureMatcher, walked_before: Sequence[str] = ()
    ) -> int:
        """Walk ``records`` (``id``, ``generator``, ``reduced``; campaign order) in
        ``walk_order(ids, walked_before)`` after everything walked before; the fit calls made."""
        counter = MatchCounter(matcher)
        items = {record["id"]: record["reduced"] for record in records}
        lookup = ChainMap(items, self.leaders)

        def fit(key: str, leader: str) -> bool:
            return counter.cached_fit(key, leader, lookup)

        for position in walk_order([record["id"] for record in records], walked_before):
            key, generator = records[position]["id"], records[position]["generator"]
            item = items[key]
            within = self.within.setdefault(generator, LeaderWalk()).leader_of(key, item, fit, matcher.ltol)
            across = self.across.leader_of(key, item, fit, matcher.ltol)
            if key in (within, across):
                self.leaders[key] = item
            self.class_generator[key], self.class_all[key] = within, across
            self.generators_of_class.setdefault(across, set()).add(generator)
            self.ids.append(key)
        return counter.calls

    def table(self, ids: Sequence[str]) -> pd.DataFrame:
        """Rows of ``ids``, in that order. ``shared`` marks a generator-unique structure whose class
        across all generators also holds a structure of another generator."""
        rows = []
        for key in ids:
            unique_generator = self.class_generator[key] == key
            shared = unique_generator and len(self.generators_of_class[self.class_all[key]]) > 1
            rows.append(
                (
                    key,
                    self.class_generator[key],
                    unique_generator,
                    self.class_all[key],
                    self.class_all[key] == key,
                    shared,
                )
            )
        return pd.DataFrame(rows, columns=CLASS_COLUMNS)


def dedup_table(
    records: Sequence[dict], matcher: StructureMatcher, walked_before: Sequence[str] = ()
) -> tuple[pd.DataFrame, int, list[str]]:
    """Match classes of evaluated structures, per generator and across all; the new walk order.

    ``records`` (``id``, ``generator``, and ``reduced`` from ``run_reduce_job`` or ``structure``;
    None when not evaluated) must be in campaign order (config order, batch index, index in
    batch); the walk follows ``walk_order(ids, walked_before)``. A class is named by its leader's
    id. Rows (``Classes.table``) come in campaign order.
    """
    evaluated = [{**r, "reduced": reduced_of(r, matcher)} for r in records]
    evaluated = [r for r in evaluated if r["reduced"] is not None]
    classes = Classes()
    calls = classes.walk(evaluated, matcher, walked_before)
    return classes.table([r["id"] for r in evaluated]), calls, classes.ids


def dedup_shards(matching: dict) -> int:
    """Shard count of dedup: ``matching.shards``, or 1 under ``disordered`` (matches may cross formulas)."""
    options = {**section_defaults("matching"), **matching}
    return 1 if options["matcher"] == "disordered" else options["shards"]


def read_walk_order(path: str | Path) -> list[str]:
    """Ids in the order an earlier dedup walked them (empty for a fresh campaign)."""
    path = Path(path)
    return path.read_text().split("\n")[:-1] if path.exists() else []


@dataclass
class ShardState:
    """What a dedup shard keeps beside the walk order (``dedup/state/{shard}.pkl``): its classes
    and the relaxed batches they came from, so growing a campaign walks only new structures."""

    settings: dict  # matcher settings and shard count: any change walks everything again
    chunks: dict[str, tuple[list[int], list[str]]] = field(
        default_factory=dict
    )  # reduced chunk -> mark, batches
    batches: dict[str, tuple[list[int], int]] = field(
        default_factory=dict
    )  # batch -> relaxed mark, evaluated
    places: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> batch, index among evaluated
    classes: Classes = field(default_factory=Classes)


class WalkAgain(Exception):
    """A batch the state walked changed or left the campaign: its classes no longer hold."""


def shard_state_path(walk_order_path: str | Path, shard: int) -> Path:
    return Path(walk_order_path).parent / "state" / f"{shard}.pkl"


def load_shard_state(path: Path, settings: dict) -> tuple[ShardState, str | None]:
    """The saved state if made with ``settings``, else an empty one and why."""
    if not path.exists():
        return ShardState(settings), "no earlier state"
    with open(path, "rb") as handle:
        state: ShardState = pickle.load(handle)
    if state.settings != settings:
        return ShardState(settings), "matching settings changed"
    return state, None


def new_shard_records(
    state: ShardState, reduced_paths: Sequence[str], matcher: StructureMatcher, shard: int
) -> tuple[list[str], list[dict]]:
    """The campaign's batches in order and the records of ``shard`` in the batches ``state`` has
    not walked, noted in ``state``. Reads only chunk files it has not read as they are now; raises
    ``WalkAgain`` if a batch walked before changed or is gone."""
    order, records = [], []
    shards = state.settings["shards"]
    for path in reduced_paths:
        mark = chunks.file_mark(path)
        if path in state.chunks and state.chunks[path][0] == mark:
            order += state.chunks[path][1]
            continue
        batches = read_reduced_batches(path, matcher)
        state.chunks[path] = (mark, [batch["path"] for batch in batches])
        for batch in batches:
            order.append(batch["path"])
            known = state.batches.get(batch["path"])
            if known is not None:
                if known[0] != batch["mark"]:
                    raise WalkAgain(f"{batch['path']} changed")
                continue
            evaluated = [r for r in batch["records"] if r["reduced"] is not None]
            state.batches[batch["path"]] = (batch["mark"], len(evaluated))
            for index, record in enumerate(evaluated):
                if shard_of(record["reduced"].chemsys, shards) == shard:
                    records.append(record)
                    state.places[record["id"]] = (batch["path"], index)
    gone = state.batches.keys() - set(order)
    if gone:
        raise WalkAgain(f"{min(gone)} left the campaign")
    state.chunks = {path: state.chunks[path] for path in reduced_paths}
    return order, records


def run_dedup_shard_job(
    reduced_paths: Sequence[str], output_path: str, matching: dict, shard: int, walk_order_path: str
) -> None:
    """Classes of the structures whose chemical system hashes to ``shard``: exact, since buckets
    (equal composition hashes) never span two chemical systems. Only the batches its saved state
    has not walked are walked; rows carry their campaign ``position`` for the merge."""
    matcher = build_matcher(matching)
    settings = matcher_settings(matcher)
    state_path = shard_state_path(walk_order_path, shard)
    state_settings = {"matcher": settings, "shards": dedup_shards(matching), "walk": WALK}
    state, reset = load_shard_state(state_path, state_settings)
    try:
        order, records = new_shard_records(state, reduced_paths, matcher, shard)
    except WalkAgain as why:
        state, reset = ShardState(state.settings), str(why)
        order, records = new_shard_records(state, reduced_paths, matcher, shard)
    kept = len(state.classes.ids)
    calls = state.classes.walk(records, matcher, read_walk_order(walk_order_path))
    logging.info(
        "walked %d new structures after %d kept%s",
        len(records),
        kept,
        f" (walked all: {reset})" if reset else "",
    )
    starts, total = {}, 0
    for batch in order:  # campaign position of each batch's first evaluated structure
        starts[batch], total = total, total + state.batches[batch][1]
    position = {key: starts[batch] + index for key, (batch, index) in state.places.items()}
    ids = sorted(position, key=position.__getitem__)
    table = state.classes.table(ids)
    table.insert(1, "position", [position[key] for key in ids])
    io.write_table(
        output_path,
        table,
        {"matcher": settings, "walk": WALK, "fit_calls": calls, "walked": len(records), "kept": kept},
    )
    state_path.parent.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(state_path) as tmp, open(tmp, "wb") as handle:
        pickle.dump(state, handle, pickle.HIGHEST_PROTOCOL)


def run_dedup_merge_job(shard_paths: Sequence[str], output_path: str, walk_order_path: str) -> None:
    """All shards in campaign order; records the walk order so later runs keep every class id."""
    shards = [io.read_table(path) for path in shard_paths]
    frames = [t for t, _ in shards if len(t)] or [shards[0][0]]  # empty shards carry no dtypes
    table = pd.concat(frames, ignore_index=True).sort_values("position")
    ids = table["id"].tolist()
    walk = [ids[p] for p in walk_order(ids, read_walk_order(walk_order_path))]
    settings = {
        "matcher": shards[0][1]["matcher"],
        "walk": WALK,
        "fit_calls": sum(s["fit_calls"] for _, s in shards),
        "shards": len(shards),
    }
    io.write_table(output_path, table.drop(columns="position").reset_index(drop=True), settings)
    with io.atomic_path(walk_order_path) as tmp:
        tmp.write_text("".join(f"{i}\n" for i in walk))
