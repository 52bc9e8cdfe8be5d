"""Per-structure table and the validity / uniqueness / novelty summary (MatterGen's definitions)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from crystal_campaign import io

DEFINITIONS = {
    "n_requested": "structures asked of the generator (import: structures and unreadable files found)",
    "n_generated": "requests that produced a structure",
    "n_relaxed": "relaxations that finished (converged or hit max_steps)",
    "n_converged": "relaxations that reached fmax within max_steps",
    "n_relax_failed": "relaxations stopped as failed (error, non-finite values, exploding volume)",
    "n_evaluated": "structures evaluated: relaxed ones, and as given where relax is none or disordered",
    "n_struct_valid": "evaluated with all interatomic distances >= min_distance and volume >= min_volume",
    "n_comp_valid": "evaluated passing SMACT charge neutrality + Pauling test (elements, all-metal pass)",
    "n_valid": "evaluated that are structurally and compositionally valid",
    "n_unique": "match classes among evaluated structures (first of each class in campaign order)",
    "n_unique_shared": "unique structures another generator also produced (all: classes spanning generators)",
    "n_novel": "evaluated structures matching no same-formula reference structure",
    "n_unique_novel": "unique structures that are novel",
    "frac_valid": "n_valid / n_evaluated",
    "frac_unique": "n_unique / n_evaluated",
    "frac_novel": "n_novel / n_evaluated",
    "frac_unique_novel": "n_unique_novel / n_evaluated",
    "n_batches_failed": "sampling or relax jobs that kept failing; their structures are failure rows",
    "mean_rmsd": "mean RMSD (A) between generated and relaxed structure over relaxed structures",
}
COUNT_COLUMNS = [c for c in DEFINITIONS if c.startswith("n_")]


def describe_structure(structure: Structure | None, symprec: float) -> dict:
    if structure is None:
        return {
            "formula": None,
            "chemsys": None,
            "n_sites": 0,
            "space_group": None,
            "space_group_number": 0,
            "density": float("nan"),
        }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analyzer = SpacegroupAnalyzer(structure, symprec=symprec)
            symbol, number = analyzer.get_space_group_symbol(), analyzer.get_space_group_number()
    except Exception:  # spglib gives up on some broken cells; that is not worth a crash
        symbol, number = None, 0
    return {
        "formula": structure.composition.reduced_formula,
        "chemsys": structure.composition.chemical_system,
        "n_sites": len(structure),
        "space_group": symbol,
        "space_group_number": number,
        "density": float(structure.density),
    }


def structures_table(
    relaxed_paths: Sequence[str],
    validity: pd.DataFrame,
    novelty: pd.DataFrame,
    dedup: pd.DataFrame,
    symprec: float,
) -> pd.DataFrame:
    rows = []
    for path in relaxed_paths:
        for record in io.read_records(path):
            structure = record.pop("structure")
            rows.append(
                {**record, "evaluated": structure is not None, **describe_structure(structure, symprec)}
            )
    table = pd.DataFrame(rows)
    for other in (validity, novelty, dedup):
        table = table.merge(other, on="id", how="left", validate="one_to_one")
    for flag in ("unique_generator", "unique_all", "shared", "novel"):
        table[flag] = table[flag].fillna(False).astype(bool)
    return table


def summary_row(name: str, table: pd.DataFrame, n_requested: int, scope: str) -> dict:
    evaluated = table[table["evaluated"]]
    unique = evaluated[f"unique_{scope}"]
    n_evaluated = len(evaluated)
    row = {
        "generator": name,
        "n_requested": n_requested,
        "n_generated": int((table["status"] != "no_structure").sum()),
        "n_relaxed": int(table["status"].isin(["converged", "unconverged"]).sum()),
        "n_converged": int((table["status"] == "converged").sum()),
        "n_relax_failed": int((table["status"] == "failed").sum()),
        "n_evaluated": n_evaluated,
        "n_struct_valid": int(evaluated["struct_valid"].sum()),
        "n_comp_valid": int(evaluated["comp_valid"].sum()),
        "n_valid": int(evaluated["valid"].sum()),
        "n_unique": int(unique.sum()),
        "n_unique_shared": int(evaluated["shared"].sum())
        if scope == "generator"
        else int((evaluated.groupby("class_all")["generator"].nunique() > 1).sum()),
        "n_novel": int(evaluated["novel"].sum()),
        "n_unique_novel": int((unique & evaluated["novel"]).sum()),
    }
    for count in ("valid", "unique", "novel", "unique_novel"):
        row[f"frac_{count}"] = row[f"n_{count}"] / n_evaluated if n_evaluated else float("nan")
    row["mean_rmsd"] = float(table.loc[table["status"].isin(["converged", "unconverged"]), "rmsd"].mean())
    return row


def summary_table(table: pd.DataFrame, requested: dict[str, int]) -> pd.DataFrame:
    rows = [
        summary_row(name, table[table["generator"] == name], n, "generator") for name, n in requested.items()
    ]
    rows.append(summary_row("all", table, sum(requested.values()), "all"))
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    def cell(value) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def failed_batches(sample_paths: Sequence[str], relaxed_paths: Sequence[str]) -> list[dict]:
    """Batches whose sampling or relax job kept failing and was recorded as failure rows (jobs.py)."""
    failed = []
    for stage, paths in (("sample", sample_paths), ("relax", relaxed_paths)):
        for path in paths:
            sidecar = io.read_json(io.sidecar_path(path))
            reason = sidecar["stats"].get("failed") if stage == "sample" else sidecar["relaxer"].get("failed")
            if reason:
                generator, batch = Path(path).parent.name, int(Path(path).name.split(".")[0])
                failed.append({"generator": generator, "batch": batch, "stage": stage, "reason": reason})
    return failed


def with_failed_batch_counts(summary: pd.DataFrame, failed: list[dict]) -> pd.DataFrame:
    counts = pd.Series([f["generator"] for f in failed], dtype=object).value_counts()
    per_generator = summary["generator"].map(counts).fillna(0).astype(int)
    return summary.assign(n_batches_failed=per_generator.where(summary["generator"] != "all", len(failed)))


def run_metrics_job(
    sample_paths: Sequence[str],
    relaxed_paths: Sequence[str],
    validity_paths: Sequence[str],
    novelty_paths: Sequence[str],
    dedup_path: str,
    outputs: dict,
    settings: dict,
) -> None:
    validity = [io.read_table(p) for p in validity_paths]
    novelty = [io.read_table(p) for p in novelty_paths]
    dedup, dedup_settings = io.read_table(dedup_path)
    table = structures_table(
        relaxed_paths,
        pd.concat([t for t, _ in validity], ignore_index=True),
        pd.concat([t for t, _ in novelty], ignore_index=True),
        dedup,
        settings["symprec"],
    )
    samples = [io.read_json(io.sidecar_path(p)) for p in sample_paths]
    requested: dict[str, int] = {}
    for sidecar in samples:
        requested[sidecar["generator"]] = requested.get(sidecar["generator"], 0) + sidecar["n_requested"]
    failed = failed_batches(sample_paths, relaxed_paths)
    summary = with_failed_batch_counts(summary_table(table, requested), failed)
    relaxers = {
        json.dumps(r, sort_keys=True): r
        for r in (io.read_json(io.sidecar_path(p))["relaxer"] for p in relaxed_paths)
    }
    reference = novelty[0][1]["reference"] if novelty else {}
    used = {
        "generators": {s["generator"]: {"backend": s["backend"], "settings": s["settings"]} for s in samples},
        "seeds": {f"{s['generator']}/{s['batch']}": s["seed"] for s in samples},
        "relax": list(relaxers.values()),
        "validity": validity[0][1]["validity"] if validity else {},
        "matcher": dedup_settings["matcher"],
        "reference": reference,
        "metrics": settings,
        "failed_batches": failed,
        "fit_calls": {
            "dedup": dedup_settings["fit_calls"],
            "novelty": sum(s["fit_calls"] for _, s in novelty),
        },
    }
    stamp = {
        "relaxer": "; ".join(
            f"{r['backend']} {r.get('model', '')} {r.get('checkpoint_sha256', '')[:12]}".strip()
            for r in relaxers.values()
        ),
        "matcher": " ".join(f"{k}={v}" for k, v in dedup_settings["matcher"].items()),
        "reference_sha256": reference.get("sha256", "")[:12],
    }
    summary = summary.assign(**stamp)
    io.write_table(outputs["structures"], table, used)
    with io.atomic_path(outputs["csv"]) as tmp:
        summary.to_csv(tmp, index=False)
    with io.atomic_path(outputs["markdown"]) as tmp:
        tmp.write_text(
            to_markdown(summary.drop(columns=list(stamp)))
            + "\n"
            + "\n".join(f"- {key}: {value}" for key, value in stamp.items())
            + "\n"
            + "".join(f"- failed batch {f['generator']}/{f['batch']:04d}: {f['reason']}\n" for f in failed)
        )
    io.write_json(
        outputs["json"],
        {"definitions": DEFINITIONS, "settings": used, "summary": summary.to_dict(orient="records")},
    )
