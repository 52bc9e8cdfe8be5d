"""Where a campaign stands, from its files alone (no Snakemake planning): per generator and stage,
batches done, failed (recorded as failure rows) and left; then the campaign-wide outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crystal_campaign import generators, io, tables

# Per-batch stages: (name, folder under results/{campaign}, file of a finished batch).
BATCH_STAGES = [
    ("sample", "samples", ".json"),
    ("relax", "relaxed", ".json"),
    ("validity", "validity", ".parquet"),
    ("novelty", "novelty", ".parquet"),
    ("stability", "stability", ".parquet"),
]
# Campaign-wide outputs, each named by what a user opens.
CAMPAIGN_OUTPUTS = {
    "reference": "reference/reference.json",
    "dedup": "dedup/classes.parquet",
    "metrics": "metrics/summary.csv",
    "candidates": "candidates/index.csv",
    "plots": "plots/summary.html",
}


@dataclass
class StageCount:
    done: int = 0
    failed: int = 0  # of done: the job kept failing and its batch is failure rows

    def cell(self, total: int) -> str:
        return f"{self.done}/{total}" + (f" ({self.failed} failed)" if self.failed else "")


def allocated_batches(results: Path, name: str) -> list[int]:
    """A generator's batches in the rounds allocated so far (adaptive rounds: ``rounds/``)."""
    return [
        batch
        for path in sorted((results / "rounds").glob("allocation_*.json"))
        for batch in io.read_json(path)["batches"].get(name, [])
    ]


def planned_batches(config: dict, results: Path, generator: dict) -> list[int]:
    if config.get("rounds"):
        return allocated_batches(results, generator["name"])
    return list(range(generators.n_batches(generator)))


def batch_status(results: Path, generator: dict, batches: list[int]) -> dict[str, StageCount]:
    """Per stage, the generator's batches whose file is there (and, for sample and relax, failed)."""
    counts = {stage: StageCount() for stage, _, _ in BATCH_STAGES}
    for batch in batches:
        for stage, folder, suffix in BATCH_STAGES:
            path = results / folder / generator["name"] / f"{batch:04d}{suffix}"
            if path.exists():
                counts[stage].done += 1
                if suffix == ".json" and io.read_json(path)["failed"]:
                    counts[stage].failed += 1
    return counts


def status_lines(config: dict, results_root: str | Path = "results") -> list[str]:
    """The status table and the campaign-wide outputs, as printed by ``crystal-campaign status``."""
    results = Path(results_root) / config["campaign"]
    header = ["generator", "batches", *(stage for stage, _, _ in BATCH_STAGES)]
    rows = []
    for generator in config["generators"]:
        batches = planned_batches(config, results, generator)
        total = len(batches)
        counts = batch_status(results, generator, batches)
        rows.append(
            [generator["name"], str(total), *(counts[stage].cell(total) for stage, _, _ in BATCH_STAGES)]
        )
    table = tables.text_table([header, *rows])
    outputs = ", ".join(
        f"{name} {'done' if (results / path).exists() else 'missing'}"
        for name, path in CAMPAIGN_OUTPUTS.items()
    )
    lines = [f"Campaign {config['campaign']!r} ({results}):", *table, f"campaign outputs: {outputs}"]
    if config.get("rounds"):
        allocated = len(list((results / "rounds").glob("allocation_*.json")))
        lines.append(f"rounds: {allocated} of {config['rounds']['n_rounds']} allocated (batches so far)")
    return lines
