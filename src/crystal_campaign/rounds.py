"""Adaptive rounds: each generator instance is an arm; a round's batches go where S.U.N. came from.

Round 0 splits ``rounds.batches_per_round`` evenly over the arms (or as ``rounds.first_round``
says). Round r > 0 splits them by a policy over the arms' yields in rounds < r: a share
``rounds.explore`` of the batches goes round-robin to every arm, the rest by

* ``thompson`` (default): per batch, one draw of each arm's S.U.N. rate from its Beta posterior
  (Beta(1 + successes, 1 + trials - successes)); the batch goes to the best draw;
* ``ucb``: all to the arm with the highest upper confidence bound
  (rate + ``ucb_c`` * sqrt(ln(total trials) / trials); an arm never tried first);
* ``fixed``: the round-0 split every round.

Successes are S.U.N. (``objective: sun``) or metastable S.U.N. (``msun``) structures, trials the
structures requested; ``*_per_gpu_hour`` objectives weigh an arm's rate by the structures it
yields per hour of sampling and relaxation wall time. Uniqueness is across every generator and
every earlier round (the campaign's walk is round-major). An allocation is a pure function of the
yields and (``rounds.seed``, round): a rerun reproduces it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from crystal_campaign import chunks, io, plots
from crystal_campaign.dedup import dedup_table
from crystal_campaign.matching import build_matcher, read_reduced


@dataclass(frozen=True)
class ArmYield:
    """What an arm produced in the rounds so far."""

    arm: str
    batches: int
    trials: int  # structures requested
    sun: int
    msun: int
    hours: float  # sampling + relaxation wall time of its batches


def successes(item: ArmYield, objective: str) -> int:
    return item.msun if objective.startswith("msun") else item.sun


def per_hour(item: ArmYield, objective: str) -> float:
    """Structures per hour (the weight of a per-GPU-hour objective), 1 for per-structure objectives."""
    if not objective.endswith("per_gpu_hour"):
        return 1.0
    return item.trials / item.hours if item.hours > 0 else 1.0


def even_split(arms: Sequence[str], batches: int, start: int = 0) -> dict[str, int]:
    """``batches`` dealt round-robin over ``arms``, beginning with ``arms[start]``."""
    split = dict.fromkeys(arms, 0)
    for i in range(batches):
        split[arms[(start + i) % len(arms)]] += 1
    return split


def first_split(arms: Sequence[str], settings: dict) -> dict[str, int]:
    configured = settings["first_round"]
    if configured:
        return {arm: configured.get(arm, 0) for arm in arms}
    return even_split(arms, settings["batches_per_round"])


def allocate(
    round_index: int, arms: Sequence[str], yields: dict[str, ArmYield], settings: dict
) -> pd.DataFrame:
    """Batches per arm for round ``round_index`` and why: one row per arm with its yields so far,
    posterior, draws won and batches."""
    so_far = [yields.get(arm, ArmYield(arm, 0, 0, 0, 0, 0.0)) for arm in arms]  # untried arms: nothing yet
    rows = pd.DataFrame([asdict(item) for item in so_far]).rename(columns={"batches": "batches_before"})
    objective, policy = settings["objective"], settings["policy"]
    rows.insert(0, "round", round_index)
    rows["successes"] = [successes(item, objective) for item in so_far]
    rows["alpha"] = 1 + rows["successes"]
    rows["beta"] = 1 + rows["trials"] - rows["successes"]
    rows["draws_won"] = 0
    rows["value"] = math.nan
    if round_index == 0 or policy == "fixed":
        split = first_split(arms, settings)
    else:
        total = settings["batches_per_round"]
        explore = int(settings["explore"] * total)
        split = even_split(arms, explore, start=round_index % len(arms))
        weights = np.array([per_hour(item, objective) for item in so_far])
        if policy == "thompson":
            rng = np.random.default_rng([settings["seed"], round_index])
            draws = rng.beta(rows["alpha"], rows["beta"], size=(total - explore, len(arms))) * weights
            winners = np.argmax(draws, axis=1)
            rows["draws_won"] = np.bincount(winners, minlength=len(arms))
            rows["value"] = (
                draws.mean(axis=0) if len(draws) else rows["alpha"] / (rows["alpha"] + rows["beta"])
            )
        else:  # ucb
            trials = rows["trials"].to_numpy(dtype=float)
            rate = np.divide(rows["successes"], trials, out=np.zeros(len(arms)), where=trials > 0)
            bonus = settings["ucb_c"] * np.sqrt(np.log(max(trials.sum(), 1.0)) / np.maximum(trials, 1.0))
            rows["value"] = np.where(trials > 0, (rate + bonus) * weights, np.inf)
            rows.loc[int(np.argmax(rows["value"])), "draws_won"] = total - explore
        for arm, won in zip(arms, rows["draws_won"], strict=True):
            split[arm] += int(won)
    rows["batches"] = [split[arm] for arm in arms]
    rows["policy"], rows["objective"] = policy, objective
    return rows


def batch_indices(allocation: pd.DataFrame) -> dict[str, list[int]]:
    """Each arm's batches numbered on from its earlier rounds' (so seeds and files never collide)."""
    return {
        row.arm: list(range(row.batches_before, row.batches_before + row.batches))
        for row in allocation.itertuples()
    }


def write_allocation(path: str, allocation: pd.DataFrame) -> None:
    io.write_json(path, {"rows": allocation.to_dict(orient="records"), "batches": batch_indices(allocation)})


def read_allocation(path: str) -> dict:
    return io.read_json(path)


def run_allocation_job(
    round_index: int, yields_path: str | None, output_path: str, arms: Sequence[str], settings: dict
) -> None:
    yields = {}
    if yields_path:
        yields = {row["arm"]: ArmYield(**row) for row in io.read_json(yields_path)["cumulative"]}
    write_allocation(output_path, allocate(round_index, arms, yields, settings))


def chunk_outcomes(chunk_list: Sequence[dict], matching: dict) -> pd.DataFrame:
    """Per structure of ``chunk_list`` (round-major order; each with its ``round``, ``arm`` and the
    ``reduced``, ``novelty``, ``stability``, ``sample`` and ``relaxed`` paths): the round, arm,
    and whether it is S.U.N. / metastable S.U.N. against everything before it."""
    matcher = build_matcher(matching)
    records, flags = [], []
    for chunk in chunk_list:
        reduced = read_reduced(chunk["reduced"], matcher)
        novelty, _ = io.read_table(chunk["novelty"])
        stability, _ = io.read_table(chunk["stability"])
        flags.append(
            pd.DataFrame({"id": [r["id"] for r in reduced], "round": chunk["round"], "arm": chunk["arm"]})
            .merge(novelty[["id", "novel"]], on="id", how="left")
            .merge(stability[["id", "stable", "metastable"]], on="id", how="left")
        )
        records += reduced
    table = pd.concat(flags, ignore_index=True) if flags else pd.DataFrame(columns=["id", "round", "arm"])
    classes, _, _ = dedup_table(records, matcher)
    table = table.merge(classes[["id", "unique_all"]], on="id", how="left")
    for column in ("novel", "stable", "metastable", "unique_all"):
        table[column] = table[column].fillna(False).astype(bool) if column in table else False
    table["sun"] = table["stable"] & table["novel"] & table["unique_all"]
    table["msun"] = table["metastable"] & table["novel"] & table["unique_all"]
    return table


def chunk_hours(chunk: dict) -> float:
    """Sampling + relaxation wall time of a chunk's batches (from their sidecars), in hours."""
    entries = [*chunks.read_manifest(chunk["sample"]), *chunks.read_manifest(chunk["relaxed"])]
    return sum(entry["sidecar"]["wall_time_s"] for entry in entries) / 3600


def chunks_of(inputs: dict[str, Sequence[str]]) -> list[dict]:
    """The yields job's inputs (parallel lists of chunk files per stage, round-major, and the
    allocations) as one dict per chunk: its round, arm, batches and paths."""
    round_of = {
        (arm, batch): round_index
        for round_index, path in enumerate(inputs["allocations"])
        for arm, batches in read_allocation(path)["batches"].items()
        for batch in batches
    }
    stages = {
        "reduced": "reduced",
        "novelty": "novelty",
        "stability": "stability",
        "sample": "samples",
        "relaxed": "relaxed",
    }
    found = []
    for i, sample_manifest in enumerate(inputs["samples"]):
        batches = [entry["sidecar"]["batch"] for entry in chunks.read_manifest(sample_manifest)]
        arm = io.read_json(sample_manifest)["generator"]
        paths = {key: inputs[stage][i] for key, stage in stages.items()}
        found.append({"round": round_of[(arm, batches[0])], "arm": arm, "batches": len(batches), **paths})
    return found


def round_yields(chunk_list: Sequence[dict], matching: dict) -> pd.DataFrame:
    """One row per (round, arm): batches, trials, S.U.N., metastable S.U.N. and hours."""
    outcomes = chunk_outcomes(chunk_list, matching)
    keys = [(c["round"], c["arm"]) for c in chunk_list]
    rows = []
    for round_index, arm in dict.fromkeys(keys):
        mine = outcomes[(outcomes["round"] == round_index) & (outcomes["arm"] == arm)]
        own = [c for c in chunk_list if (c["round"], c["arm"]) == (round_index, arm)]
        rows.append(
            {
                "round": round_index,
                "arm": arm,
                "batches": sum(c["batches"] for c in own),
                "trials": len(mine),
                "sun": int(mine["sun"].sum()),
                "msun": int(mine["msun"].sum()),
                "hours": sum(chunk_hours(c) for c in own),
            }
        )
    return pd.DataFrame(rows, columns=["round", "arm", "batches", "trials", "sun", "msun", "hours"])


def run_yields_job(chunk_list: Sequence[dict], output_path: str, arms: Sequence[str], matching: dict) -> None:
    per_round = round_yields(chunk_list, matching)
    totals = per_round.groupby("arm")[["batches", "trials", "sun", "msun", "hours"]].sum()
    cumulative = [
        {"arm": arm, **{k: (float(v) if k == "hours" else int(v)) for k, v in totals.loc[arm].items()}}
        for arm in arms
        if arm in totals.index
    ]
    io.write_json(output_path, {"per_round": per_round.to_dict(orient="records"), "cumulative": cumulative})


def rounds_table(allocation_paths: Sequence[str], yields_path: str) -> pd.DataFrame:
    """Each round's allocation (its inputs and draws) beside what the round then yielded."""
    allocations = pd.DataFrame([row for path in allocation_paths for row in read_allocation(path)["rows"]])
    yielded = pd.DataFrame(
        io.read_json(yields_path)["per_round"],
        columns=["round", "arm", "batches", "trials", "sun", "msun", "hours"],
    )
    yielded = yielded.drop(columns="batches").rename(
        columns={c: f"round_{c}" for c in ("trials", "sun", "msun", "hours")}
    )
    table = allocations.merge(yielded, on=["round", "arm"], how="left")
    for column in ("round_trials", "round_sun", "round_msun"):
        table[column] = table[column].fillna(0).astype(int)
    table["round_hours"] = table["round_hours"].fillna(0.0)
    for count in ("sun", "msun"):
        table[f"cumulative_{count}"] = table.groupby("arm")[f"round_{count}"].cumsum()
    return table


def rounds_figure(table: pd.DataFrame, arms: Sequence[str]) -> Figure:
    """Batches per arm per round (stacked) and the cumulative S.U.N. of each arm."""
    figure = Figure(figsize=(10.0, 4.0), layout="constrained")
    batches_axes, sun_axes = figure.subplots(1, 2)
    colors = plots.generator_colors(arms)
    objective = table["objective"].iloc[0] if len(table) else "sun"
    count = "msun" if objective.startswith("msun") else "sun"
    bottom = np.zeros(table["round"].nunique())
    for arm in arms:
        mine = table[table["arm"] == arm].sort_values("round")
        batches_axes.bar(mine["round"], mine["batches"], bottom=bottom, color=colors[arm], label=arm)
        bottom += mine["batches"].to_numpy()
        sun_axes.plot(mine["round"], mine[f"cumulative_{count}"], marker="o", color=colors[arm], label=arm)
    batches_axes.set_xlabel("round")
    batches_axes.set_ylabel("batches")
    batches_axes.set_title(f"Allocation ({table['policy'].iloc[0] if len(table) else 'n/a'})")
    sun_axes.set_xlabel("round")
    sun_axes.set_ylabel("metastable S.U.N." if count == "msun" else "S.U.N.")
    sun_axes.set_title(f"Cumulative {'metastable ' if count == 'msun' else ''}S.U.N. per generator")
    for axes in (batches_axes, sun_axes):
        axes.xaxis.get_major_locator().set_params(integer=True)
    figure.legend(*batches_axes.get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    return figure


def run_rounds_table_job(
    allocation_paths: Sequence[str], yields_path: str, outputs: dict, arms: Sequence[str], settings: dict
) -> None:
    table = rounds_table(allocation_paths, yields_path)
    with io.atomic_path(outputs["table"]) as tmp:
        table.to_csv(tmp, index=False)
    with io.atomic_path(outputs["figure"]) as tmp:
        rounds_figure(table, arms).savefig(tmp, format="png", dpi=settings["dpi"])
