"""Where a campaign stands, from its files alone (no Snakemake planning): per generator and stage,
batches done, failed (recorded as failure rows) and left (the checks count the batches of the
chunks they have done); then the campaign-wide outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crystal_campaign import chunks, generators, io, tables
from crystal_campaign.schema import section_defaults

# Stages, each with its folder under results/{campaign}: sampling and relaxation write a file set
# per batch (its sidecar says whether it failed), the checks a table per chunk of batches.
BATCH_STAGES = [("sample", "samples"), ("relax", "relaxed")]
CHUNK_STAGES = [("validity", "validity"), ("novelty", "novelty"), ("stability", "stability")]
STAGES = [stage for stage, _ in BATCH_STAGES + CHUNK_STAGES]
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


def planned_chunks(config: dict, results: Path, generator: dict) -> list[str]:
    """A generator's chunks: of its batches, or with adaptive rounds of each round allocated so far."""
    size = {**section_defaults("jobs"), **config.get("jobs", {})}["batches_per_job"]
    if not config.get("rounds"):
        return chunks.split(range(generators.n_batches(generator)), size)
    return [
        chunk
        for path in sorted((results / "rounds").glob("allocation_*.json"))
        for chunk in chunks.split(io.read_json(path)["batches"].get(generator["name"], []), size)
    ]


def batch_status(results: Path, generator: dict, planned: list[str]) -> dict[str, StageCount]:
    """Per stage, the generator's batches that are done (and, for sample and relax, failed)."""
    counts = {stage: StageCount() for stage in STAGES}
    name = generator["name"]
    for chunk in planned:
        batches = chunks.chunk_batches(chunk)
        for stage, folder in BATCH_STAGES:
            for batch in batches:
                sidecar = io.sidecar_path(chunks.batch_path(results / folder / name, batch))
                if sidecar.exists():
                    counts[stage].done += 1
                    counts[stage].failed += bool(io.read_json(sidecar)["failed"])
        for stage, folder in CHUNK_STAGES:
            if any((results / folder / name).glob(f"{chunk}.*")):
                counts[stage].done += len(batches)
    return counts


def status_lines(config: dict, results_root: str | Path = "results") -> list[str]:
    """The status table and the campaign-wide outputs, as printed by ``crystal-campaign status``."""
    results = Path(results_root) / config["campaign"]
    header = ["generator", "batches", *STAGES]
    rows = []
    for generator in config["generators"]:
        planned = planned_chunks(config, results, generator)
        total = sum(len(chunks.chunk_batches(chunk)) for chunk in planned)
        counts = batch_status(results, generator, planned)
        rows.append([generator["name"], str(total), *(counts[stage].cell(total) for stage in STAGES)])
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
