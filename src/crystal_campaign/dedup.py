"""Deduplication: the classes of pymatgen's ``group_structures``, with far fewer ``fit`` calls,
per generator and across the campaign, sharded by chemical system.

Classes. ``group_structures`` pops the first unmatched structure of a bucket as a class leader and
puts every later structure ``x`` with ``fit(leader, x)`` in its class. Walking structures in order
and giving each to the first earlier leader it fits (or making it a leader) yields exactly those
classes: a structure that fits no earlier leader is the first unmatched one once those are done.

Walk order (stable class ids). A fresh campaign is walked in campaign order (generator in config
order, batch index, index in batch). Later runs walk every structure walked before in its earlier
position, then the new ones in campaign order (``walk_order``). A structure's class depends only
on the structures walked before it, so growing a campaign (more batches for any generator, a
generator appended to the config) never changes an existing structure's class or its leader id.

Shards. A structure's shard is the hash of its chemical system; buckets (equal composition
hashes) never span two chemical systems, so each shard's classes are exact on their own.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

import pandas as pd
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from crystal_campaign import io
from crystal_campaign.matching import (
    MatchCounter,
    build_matcher,
    matcher_settings,
    read_reduced_batch,
    reduce_structure,
    reduced_of,
)
from crystal_campaign.pruning import LeaderBucket, Reduced
from crystal_campaign.schema import section_defaults


def leader_classes(
    reduced: Sequence[Reduced],
    fit: Callable[[int, int], bool],
    ltol: float,
    order: Sequence[int] | None = None,
) -> dict[int, int]:
    """Map each index in ``order`` (default: all, in order) to the index of its class leader.

    Structures are bucketed by formula, except those that ``crosses`` (partial occupancies under
    ``disordered``), which are compared with every earlier leader, and every later structure with them.
    """
    buckets: dict[Hashable, LeaderBucket] = defaultdict(LeaderBucket)
    cross = LeaderBucket()
    classes: dict[int, int] = {}
    rank: dict[int, int] = {}
    for index in range(len(reduced)) if order is None else order:
        rank[index] = len(rank)
        item = reduced[index]
        pools = [*buckets.values(), cross] if item.crosses else [buckets[item.key], cross]
        candidates = [leader for pool in pools for leader in pool.candidates(item, ltol)]
        if item.crosses or cross.indices:
            candidates.sort(key=rank.__getitem__)  # first leader in walk order wins
        classes[index] = next((leader for leader in candidates if fit(leader, index)), index)
        if classes[index] == index:
            (cross if item.crosses else buckets[item.key]).add(index, item)
    return classes


def group_indices(structures: Sequence[Structure], matcher: StructureMatcher) -> tuple[list[int], int]:
    """Class leader index per structure (the classes of ``group_structures``) and the fit calls made."""
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


def dedup_table(
    records: Sequence[dict], matcher: StructureMatcher, walked_before: Sequence[str] = ()
) -> tuple[pd.DataFrame, int, list[str]]:
    """Match classes of evaluated structures, per generator and across all; the new walk order.

    ``records`` (``id``, ``generator``, and ``reduced`` from ``run_reduce_job`` or ``structure``;
    None when not evaluated) must be in campaign order (config order, batch index, index in
    batch); the walk follows ``walk_order(ids, walked_before)``. A class is named by its leader's
    id. ``shared`` marks a generator-unique structure whose class across all generators also holds
    a structure of another generator. Rows come in campaign order.
    """
    counter = MatchCounter(matcher)
    pairs = [(r, reduced_of(r, matcher)) for r in records]
    evaluated = [r for r, item in pairs if item is not None]
    reduced = [item for _, item in pairs if item is not None]
    order = walk_order([r["id"] for r in evaluated], walked_before)

    def fit(i: int, j: int) -> bool:
        return counter.cached_fit(i, j, reduced)

    by_generator: dict[str, list[int]] = defaultdict(list)
    for position in order:
        by_generator[evaluated[position]["generator"]].append(position)
    within = {}
    for positions in by_generator.values():
        within.update(leader_classes(reduced, fit, matcher.ltol, positions))
    across = leader_classes(reduced, fit, matcher.ltol, order)
    generators_of_class: dict[int, set[str]] = defaultdict(set)
    for position, leader in across.items():
        generators_of_class[leader].add(evaluated[position]["generator"])
    rows = [
        {
            "id": record["id"],
            "class_generator": evaluated[within[p]]["id"],
            "unique_generator": within[p] == p,
            "class_all": evaluated[across[p]]["id"],
            "unique_all": across[p] == p,
            "shared": within[p] == p and len(generators_of_class[across[p]]) > 1,
        }
        for p, record in enumerate(evaluated)
    ]
    columns = ["id", "class_generator", "unique_generator", "class_all", "unique_all", "shared"]
    return pd.DataFrame(rows, columns=columns), counter.calls, [evaluated[p]["id"] for p in order]


def dedup_shards(matching: dict) -> int:
    """Shard count of dedup: ``matching.shards``, or 1 under ``disordered`` (matches may cross formulas)."""
    options = {**section_defaults("matching"), **matching}
    return 1 if options["matcher"] == "disordered" else options["shards"]


def shard_records(
    reduced_paths: Sequence[str], matcher: StructureMatcher, shard: int, shards: int
) -> list[dict]:
    """Evaluated records of one shard, in campaign order, each with its campaign ``position``."""
    records, position = [], 0
    for path in reduced_paths:
        for record in read_reduced_batch(path, matcher):
            if record["reduced"] is None:
                continue
            if shard_of(record["reduced"].chemsys, shards) == shard:
                records.append({**record, "position": position})
            position += 1
    return records


def read_walk_order(path: str | Path) -> list[str]:
    """Ids in the order an earlier dedup walked them (empty for a fresh campaign)."""
    path = Path(path)
    return path.read_text().split("\n")[:-1] if path.exists() else []


def run_dedup_shard_job(
    reduced_paths: Sequence[str], output_path: str, matching: dict, shard: int, walk_order_path: str
) -> None:
    """Classes of the structures whose chemical system hashes to ``shard``: exact, since buckets
    (equal composition hashes) never span two chemical systems."""
    matcher = build_matcher(matching)
    records = shard_records(reduced_paths, matcher, shard, dedup_shards(matching))
    table, calls, _ = dedup_table(records, matcher, read_walk_order(walk_order_path))
    table.insert(1, "position", [r["position"] for r in records])
    io.write_table(output_path, table, {"matcher": matcher_settings(matcher), "fit_calls": calls})


def run_dedup_merge_job(shard_paths: Sequence[str], output_path: str, walk_order_path: str) -> None:
    """All shards in campaign order; records the walk order so later runs keep every class id."""
    shards = [io.read_table(path) for path in shard_paths]
    frames = [t for t, _ in shards if len(t)] or [shards[0][0]]  # empty shards carry no dtypes
    table = pd.concat(frames, ignore_index=True).sort_values("position")
    ids = table["id"].tolist()
    walk = [ids[p] for p in walk_order(ids, read_walk_order(walk_order_path))]
    settings = {
        "matcher": shards[0][1]["matcher"],
        "fit_calls": sum(s["fit_calls"] for _, s in shards),
        "shards": len(shards),
    }
    io.write_table(output_path, table.drop(columns="position").reset_index(drop=True), settings)
    with io.atomic_path(walk_order_path) as tmp:
        tmp.write_text("".join(f"{i}\n" for i in walk))
