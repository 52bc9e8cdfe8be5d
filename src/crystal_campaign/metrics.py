"""Per-structure table and the validity / uniqueness / novelty summary (MatterGen's definitions)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd
from pymatgen.core import Composition

from crystal_campaign import chunks, distributions, ensemble, generators, io, tables

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
    "frac_struct_valid": "n_struct_valid / n_evaluated (MatterGen avg_structure_validity)",
    "frac_comp_valid": "n_comp_valid / n_evaluated (MatterGen avg_comp_validity)",
    "frac_valid": "n_valid / n_evaluated (MatterGen avg_structure_comp_validity)",
    "frac_unique": "n_unique / n_evaluated (MatterGen frac_unique_structures)",
    "frac_novel": "n_novel / n_evaluated (MatterGen frac_novel_structures)",
    "frac_unique_novel": "n_unique_novel / n_evaluated (MatterGen frac_novel_unique_structures)",
    "frac_unique_systems": "distinct chemical systems among evaluated structures / n_evaluated "
    "(MatterGen frac_unique_systems)",
    "frac_novel_systems": "distinct chemical systems of evaluated structures that no reference structure has "
    "/ n_evaluated (MatterGen frac_novel_systems)",
    "precision": "evaluated structures that match a reference structure / n_evaluated (MatterGen precision)",
    "recall": "structures of the local reference snapshot that some evaluated structure matches / the "
    "snapshot's structures (MatterGen recall; NaN without a local snapshot)",
    "n_batches_failed": "sampling or relax jobs that kept failing; their structures are failure rows",
    "mean_rmsd": "mean RMSD (A) between generated and relaxed structure over relaxed structures",
    "n_uncovered_chemsys": "evaluated structures whose chemical system no reference structure has: "
    "their novelty is no evidence (see reference_size)",
    "n_novelty_unknown": "evaluated, novelty unknown (a remote reference failed); never novel",
    "n_stable": "evaluated with e_above_hull <= stability_threshold (eV/atom; NaN E_hull is not stable)",
    "n_metastable": "evaluated with e_above_hull <= metastable_threshold",
    "n_sun": "stable, unique (first of its class: per generator; all: across generators) and novel",
    "n_msun": "metastable, unique and novel",
    "frac_stable": "n_stable / n_requested (failed structures count, as MatterGen's S.U.N.)",
    "frac_sun": "n_sun / n_requested",
    "frac_msun": "n_msun / n_requested",
    "stability_threshold": "E_hull threshold (eV/atom) for stable and S.U.N. (stability_preset: whose "
    "thresholds; none: MatterGen's 0.1 and metastable 0.2)",
    "metastable_threshold": "E_hull threshold (eV/atom) for metastable and metastable S.U.N.",
}
# Units of the columns that have one, in the per-structure table, the summary and the candidates.
UNITS = {
    "energy": "eV",
    "energy_per_atom": "eV/atom",
    "e_above_hull": "eV/atom",
    "hull_energy_per_atom": "eV/atom",
    "formation_energy_per_atom": "eV/atom",
    "stability_threshold": "eV/atom",
    "metastable_threshold": "eV/atom",
    "max_force": "eV/Å",
    "rmsd": "Å",
    "mean_rmsd": "Å",
    "density": "g/cm³",
    "volume_ratio": "relaxed / initial volume",
}
# Conditioning adherence, over the evaluated structures of generators conditioned that way (the
# `all` row: of every such generator); NaN where no generator is.
ADHERENCE_DEFINITIONS = {
    "frac_in_target_chemsys": "evaluated structures whose elements are exactly the target chemical system "
    "(generators with properties_to_condition_on.chemical_system)",
    "frac_space_group_hit": "evaluated structures in the target space group at metrics.symprec "
    "(generators with properties_to_condition_on.space_group)",
    "frac_composition_match": "evaluated structures whose reduced composition is their target formula's "
    "(crystal structure prediction: chemeleon task csp)",
}
MODEL_DEFINITION = {"model": "generator model name and checkpoint SHA-256 prefix, from the batch sidecars"}
ADHERENCE_FLAGS = {
    "frac_in_target_chemsys": "in_target_chemsys",
    "frac_space_group_hit": "space_group_hit",
    "frac_composition_match": "composition_match",
}
# What the summary reads from the per-structure table, with dtypes: present even when a campaign
# has no batch at all (every n_batches 0), so its summary is zeros instead of a crash.
SUMMARY_INPUTS = {
    "id": "str",
    "generator": "str",
    "batch": "int64",
    "formula": "str",
    "chemsys": "str",
    "space_group_number": "int64",
    "status": "str",
    "rmsd": "float64",
    "evaluated": "bool",
    "struct_valid": "bool",
    "comp_valid": "bool",
    "valid": "bool",
    "novel": "bool",
    "novelty_unknown": "bool",
    "reference_match": "str",
    "snapshot_matches": "object",
    "class_all": "str",
    "unique_generator": "bool",
    "unique_all": "bool",
    "shared": "bool",
    "reference_covers_chemsys": "bool",
}


def structures_table(
    descriptions: pd.DataFrame,
    validity: pd.DataFrame,
    novelty: pd.DataFrame,
    dedup: pd.DataFrame,
) -> pd.DataFrame:
    """The chunks' descriptions (``description``) with their validity, novelty and match classes."""
    table = descriptions
    for other in (validity, novelty, dedup):
        table = table.merge(other, on="id", how="left", validate="one_to_one")
    missing = {column: dtype for column, dtype in SUMMARY_INPUTS.items() if column not in table}
    table = table.assign(**{column: pd.Series(dtype=dtype) for column, dtype in missing.items()})
    for flag in (
        "unique_generator",
        "unique_all",
        "shared",
        "novel",
        "novelty_unknown",
        "reference_covers_chemsys",
    ):
        table[flag] = table[flag].fillna(False).astype(bool)
    return table


def add_stability(table: pd.DataFrame, stability: pd.DataFrame) -> pd.DataFrame:
    """Stability columns, and S.U.N. per structure: stable, novel and unique across the campaign."""
    table = table.merge(stability, on="id", how="left", validate="one_to_one")
    for flag in ("stable", "metastable"):
        table[flag] = table[flag].fillna(False).astype(bool)
    table["sun"] = table["stable"] & table["novel"] & table["unique_all"]
    table["msun"] = table["metastable"] & table["novel"] & table["unique_all"]
    return table


def stability_counts(table: pd.DataFrame, n_requested: int, scope: str, thresholds: dict) -> dict:
    evaluated = table[table["evaluated"]]
    unique_novel = evaluated[f"unique_{scope}"] & evaluated["novel"]
    row = {
        "n_novelty_unknown": int(evaluated["novelty_unknown"].sum()),
        "n_stable": int(evaluated["stable"].sum()),
        "n_metastable": int(evaluated["metastable"].sum()),
        "n_sun": int((evaluated["stable"] & unique_novel).sum()),
        "n_msun": int((evaluated["metastable"] & unique_novel).sum()),
    }
    for count in ("stable", "sun", "msun"):
        row[f"frac_{count}"] = row[f"n_{count}"] / n_requested if n_requested else float("nan")
    if "stable_all" in evaluated:
        row |= ensemble.ensemble_counts(evaluated, unique_novel, n_requested)
    return row | thresholds


def concat_tables(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Per-batch tables as one; a campaign without batches gives an empty table keyed by id."""
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["id"])


@dataclass
class ReferenceView:
    """What the summary compares evaluated structures with: the local reference snapshot's size
    (for recall) and its distribution ``profile`` (for the distances)."""

    n_structures: int = 0
    profile: dict = field(default_factory=lambda: distributions.profile(pd.DataFrame()))


def summary_row(
    name: str, table: pd.DataFrame, n_requested: int, scope: str, reference: ReferenceView
) -> dict:
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
    for count in ("struct_valid", "comp_valid", "valid", "unique", "novel", "unique_novel"):
        row[f"frac_{count}"] = row[f"n_{count}"] / n_evaluated if n_evaluated else float("nan")
    row.update(set_fractions(evaluated, reference.n_structures))
    row.update(distributions.distances(evaluated, reference.profile))
    row["mean_rmsd"] = float(table.loc[table["status"].isin(["converged", "unconverged"]), "rmsd"].mean())
    row["n_uncovered_chemsys"] = int((~evaluated["reference_covers_chemsys"]).sum())
    row.update(adherence_fractions(evaluated))
    return row


def set_fractions(evaluated: pd.DataFrame, snapshot_size: int) -> dict[str, float]:
    """MatterGen's fractions of the evaluated set as a whole: chemical systems, precision, recall."""
    n_evaluated = len(evaluated)
    if not n_evaluated:
        return dict.fromkeys(
            ("frac_unique_systems", "frac_novel_systems", "precision", "recall"), float("nan")
        )
    uncovered = evaluated.loc[~evaluated["reference_covers_chemsys"], "chemsys"]
    recalled = {label for labels in evaluated["snapshot_matches"].dropna() for label in labels}
    return {
        "frac_unique_systems": evaluated["chemsys"].nunique() / n_evaluated,
        "frac_novel_systems": uncovered.nunique() / n_evaluated,
        "precision": float(evaluated["reference_match"].notna().mean()),
        "recall": len(recalled) / snapshot_size if snapshot_size else float("nan"),
    }


# Table cells without a value are None or NaN, hence the isinstance checks.
def _same_elements(chemsys: str | None, target: str | None) -> bool | None:
    if not isinstance(target, str):
        return None
    return isinstance(chemsys, str) and set(chemsys.split("-")) == set(target.split("-"))


def _same_reduced_formula(formula: str | None, target: str | None) -> bool | None:
    if not isinstance(target, str):
        return None
    return isinstance(formula, str) and Composition(target).reduced_formula == formula


def add_conditioning_flags(table: pd.DataFrame, settings_by_generator: dict[str, dict]) -> pd.DataFrame:
    """Per structure: its generator's targets and whether it hits them (null where unconditioned).

    A CSP structure's target formula is its record's ``target_formula`` (carried from sampling).
    """
    conditions = {
        name: generators.backend(s["backend"]).conditioning_targets(s)
        for name, s in settings_by_generator.items()
    }
    if "target_formula" not in table:
        table = table.assign(target_formula=None)
    table["target_chemsys"] = table["generator"].map(lambda g: conditions[g]["target_chemsys"])
    table["target_space_group"] = (
        table["generator"].map(lambda g: conditions[g]["target_space_group"]).astype("Int64")
    )
    table["in_target_chemsys"] = pd.array(
        [_same_elements(c, t) for c, t in zip(table["chemsys"], table["target_chemsys"], strict=True)],
        dtype="boolean",
    )
    table["space_group_hit"] = pd.array(
        [
            None if pd.isna(t) else bool(n == t)
            for n, t in zip(table["space_group_number"], table["target_space_group"], strict=True)
        ],
        dtype="boolean",
    )
    table["composition_match"] = pd.array(
        [_same_reduced_formula(f, t) for f, t in zip(table["formula"], table["target_formula"], strict=True)],
        dtype="boolean",
    )
    return table


def adherence_fractions(evaluated: pd.DataFrame) -> dict[str, float]:
    """Each adherence fraction over the evaluated structures that have that target; NaN if none."""
    fractions = {}
    for column, flag in ADHERENCE_FLAGS.items():
        hits = evaluated[flag].dropna() if flag in evaluated else pd.Series(dtype=bool)
        fractions[column] = float(hits.astype(bool).mean()) if len(hits) else float("nan")
    return fractions


def generator_models(samples: Sequence[dict]) -> dict[str, str]:
    """Per generator (and ``all``): model name and checkpoint SHA-256 prefix from the batch sidecars."""
    models: dict[str, set[str]] = {}
    for sidecar in samples:
        stats = sidecar.get("stats", {})
        if stats.get("checkpoint_sha256"):
            model = f"{stats.get('model', '')} {stats['checkpoint_sha256'][:12]}".strip()
            models.setdefault(sidecar["generator"], set()).add(model)
            models.setdefault("all", set()).add(model)
    return {name: "; ".join(sorted(found)) for name, found in models.items()}


def summary_table(
    table: pd.DataFrame,
    requested: dict[str, int],
    thresholds: dict | None = None,
    reference: ReferenceView | None = None,
) -> pd.DataFrame:
    """One row per generator and ``all``; ``reference``: the local snapshot (none: recall and
    distances NaN)."""
    reference = reference or ReferenceView()
    rows = []
    for name, n, scope in [
        *((name, n, "generator") for name, n in requested.items()),
        ("all", sum(requested.values()), "all"),
    ]:
        part = table if name == "all" else table[table["generator"] == name]
        row = summary_row(name, part, n, scope, reference)
        if thresholds is not None:
            row |= stability_counts(part, n, scope, thresholds)
        rows.append(row)
    return pd.DataFrame(rows)


def reference_size(reference: dict) -> str:
    """How large the local novelty reference is, and whether the Materials Project is searched too."""
    if not reference:
        return ""
    n_structures = sum(reference["n_structures"].values())
    local = f"{n_structures} structures in {reference['n_chemical_systems']} chemical systems"
    return local + (" + Materials Project" if reference["mp"] else "")


def mp_stamp(reference: dict) -> dict:
    """Materials Project database version and the explicit include_gnome choice, when MP is a source."""
    sources = reference.get("mp", [])
    if not sources:
        return {}
    return {
        "mp_database_version": "; ".join(str(s["database_version"]) for s in sources),
        "include_gnome": "; ".join(str(s["include_gnome"]).lower() for s in sources),
    }


def to_markdown(table: pd.DataFrame) -> str:
    def cell(value) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def with_sampler_columns(table: pd.DataFrame, sidecars: Sequence[dict]) -> pd.DataFrame:
    """Per structure: its batch's sampler label and whether that sampler is not the model's published one."""
    samplers = pd.DataFrame(
        [
            {
                "generator": sidecar["generator"],
                "batch": sidecar["batch"],
                "sampler": sidecar["sampler"]["label"] if sidecar["sampler"] else "",
                "nondefault_sampler": bool(sidecar["sampler"]) and not sidecar["sampler"]["published"],
            }
            for sidecar in sidecars
        ],
        columns=["generator", "batch", "sampler", "nondefault_sampler"],
    )
    return table.merge(samplers, on=["generator", "batch"], how="left", validate="many_to_one")


def summary_sampler_columns(summary: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Per generator (and all): the samplers used and whether any was non-default, flagged in the tables."""
    groups = {name: table[table["generator"] == name] for name in summary["generator"]}
    groups["all"] = table
    labels = {name: "; ".join(sorted(set(g["sampler"].dropna()) - {""})) for name, g in groups.items()}
    flagged = {name: bool(group["nondefault_sampler"].fillna(False).any()) for name, group in groups.items()}
    return summary.assign(
        sampler=summary["generator"].map(labels), nondefault_sampler=summary["generator"].map(flagged)
    )


def failed_batches(samples: Sequence[dict], relaxed: Sequence[dict]) -> list[dict]:
    """Batches whose sampling or relax job kept failing and was recorded as failure rows (jobs.py),
    from the sample and relax sidecars."""
    return [
        {
            "generator": sidecar["generator"],
            "batch": sidecar["batch"],
            "stage": stage,
            "reason": sidecar["failed"],
        }
        for stage, sidecars in (("sample", samples), ("relax", relaxed))
        for sidecar in sidecars
        if sidecar["failed"]
    ]


def with_failed_batch_counts(summary: pd.DataFrame, failed: list[dict]) -> pd.DataFrame:
    counts = pd.Series([f["generator"] for f in failed], dtype=object).value_counts()
    per_generator = summary["generator"].map(counts).fillna(0).astype(int)
    return summary.assign(n_batches_failed=per_generator.where(summary["generator"] != "all", len(failed)))


@dataclass
class MetricsInputs:
    """What the metrics job reads: the batches' sidecars (from the chunk manifests) and the
    per-chunk tables with their settings."""

    samples: list[dict]  # sample sidecars (batch_files.SampleSidecar)
    relaxed: list[dict]  # relax sidecars (batch_files.RelaxSidecar)
    descriptions: list[tuple[pd.DataFrame, dict]]
    validity: list[tuple[pd.DataFrame, dict]]
    novelty: list[tuple[pd.DataFrame, dict]]
    stability: list[tuple[pd.DataFrame, dict]]
    dedup: tuple[pd.DataFrame, dict]
    reference_descriptions: pd.DataFrame
    ensemble: list[tuple[pd.DataFrame, dict]]  # per chunk and ensemble member
    embeddings: list[tuple[pd.DataFrame, dict]]  # per chunk; none without metrics.embedding
    reference_embeddings: tuple[pd.DataFrame, dict] | None

    @classmethod
    def read(cls, paths: dict[str, Sequence[str]]) -> MetricsInputs:
        """``paths``: the metrics rule's inputs (samples and relaxed manifests; descriptions,
        validity, novelty, stability, ensemble and embedding tables; dedup; the reference
        snapshot's descriptions and embeddings)."""
        return cls(
            samples=[entry["sidecar"] for p in paths["samples"] for entry in chunks.read_manifest(p)],
            relaxed=[entry["sidecar"] for p in paths["relaxed"] for entry in chunks.read_manifest(p)],
            descriptions=[io.read_table(p) for p in paths["descriptions"]],
            validity=[io.read_table(p) for p in paths["validity"]],
            novelty=[io.read_table(p) for p in paths["novelty"]],
            stability=[io.read_table(p) for p in paths["stability"]],
            dedup=io.read_table(paths["dedup"]),
            reference_descriptions=io.read_table(paths["reference_descriptions"])[0],
            ensemble=[io.read_table(p) for p in paths.get("ensemble", [])],
            embeddings=[io.read_table(p) for p in paths.get("embeddings", [])],
            reference_embeddings=io.read_table(paths["reference_embeddings"])
            if paths.get("reference_embeddings")
            else None,
        )

    @cached_property
    def failed(self) -> list[dict]:
        return failed_batches(self.samples, self.relaxed)

    @cached_property
    def relaxers(self) -> list[dict]:
        """The distinct relaxer settings of the relaxed batches."""
        return list({json.dumps(r["relaxer"], sort_keys=True): r["relaxer"] for r in self.relaxed}.values())

    @cached_property
    def reference(self) -> dict:
        """The reference snapshot the novelty jobs used (its sidecar, without its system list)."""
        return self.novelty[0][1]["reference"] if self.novelty else {}

    def thresholds(self) -> dict | None:
        if not self.stability:
            return None
        used = self.stability[0][1]["stability"]
        return {
            "stability_threshold": used["threshold"],
            "metastable_threshold": used["metastable_threshold"],
        }


def per_structure_table(inputs: MetricsInputs, settings: dict) -> pd.DataFrame:
    """One row per requested structure: relaxation, validity, novelty, classes, conditioning, stability."""
    table = structures_table(
        concat_tables([t for t, _ in inputs.descriptions]),
        concat_tables([t for t, _ in inputs.validity]),
        concat_tables([t for t, _ in inputs.novelty]),
        inputs.dedup[0],
    )
    table = add_conditioning_flags(table, {s["generator"]: s["settings"] for s in inputs.samples})
    table = with_sampler_columns(table, inputs.samples)
    if inputs.stability:
        table = add_stability(table, pd.concat([t for t, _ in inputs.stability], ignore_index=True))
    if inputs.ensemble:
        member_tables: dict[str, list[pd.DataFrame]] = {}
        for member_table, used in inputs.ensemble:
            member_tables.setdefault(used["member"]["name"], []).append(member_table)
        table = ensemble.add_ensemble(
            table,
            {name: pd.concat(parts, ignore_index=True) for name, parts in member_tables.items()},
            inputs.thresholds()["stability_threshold"],
        )
    return table


def frechet_distances(summary: pd.DataFrame, table: pd.DataFrame, inputs: MetricsInputs) -> list[float]:
    """Each summary row's Frechet distance of its evaluated structures' embeddings to the reference's."""
    own = concat_tables([t for t, _ in inputs.embeddings]).set_index("id")["embedding"]
    reference = distributions.embedding_matrix(inputs.reference_embeddings[0]["embedding"])
    evaluated = table[table["evaluated"]]
    distances = []
    for name in summary["generator"]:
        ids = evaluated["id"] if name == "all" else evaluated.loc[evaluated["generator"] == name, "id"]
        distances.append(
            distributions.frechet_distance(distributions.embedding_matrix(own.reindex(ids)), reference)
        )
    return distances


def campaign_summary(
    table: pd.DataFrame, inputs: MetricsInputs, generator_names: Sequence[str]
) -> tuple[pd.DataFrame, dict]:
    """One row per generator (config order; ``generator_names`` get one even without batches) and
    ``all``, and the stamp of settings every row carries (relaxer, matcher, reference, energy basis)."""
    requested = dict.fromkeys(generator_names, 0)
    for sidecar in inputs.samples:
        requested[sidecar["generator"]] = requested.get(sidecar["generator"], 0) + sidecar["n_requested"]
    reference = ReferenceView(
        sum(inputs.reference.get("n_structures", {}).values()),
        distributions.profile(inputs.reference_descriptions),
    )
    summary = summary_table(table, requested, inputs.thresholds(), reference)
    if inputs.reference_embeddings is not None:
        summary["frechet_distance"] = frechet_distances(summary, table, inputs)
    summary = summary_sampler_columns(summary, table)
    summary = with_failed_batch_counts(summary, inputs.failed)
    summary["model"] = summary["generator"].map(generator_models(inputs.samples)).fillna("")
    dedup_settings = inputs.dedup[1]
    reference = inputs.reference
    stamp = {
        "relaxer": "; ".join(
            f"{r['backend']} {r.get('model', '')} {r.get('checkpoint_sha256', '')[:12]}".strip()
            for r in inputs.relaxers
        ),
        "matcher": " ".join(f"{k}={v}" for k, v in dedup_settings["matcher"].items()),
        "reference_sha256": reference.get("sha256", "")[:12],
        "reference_size": reference_size(reference),
        **mp_stamp(reference),
    }
    if inputs.stability:
        used = inputs.stability[0][1]["stability"]
        stamp["energy_basis"] = used["energy_basis"]
        # whose thresholds: another benchmark's preset, or MatterGen's stable <= 0.1 by default
        stamp["stability_preset"] = used.get("preset", "none")
    return summary.assign(**stamp), stamp


def settings_used(inputs: MetricsInputs, settings: dict) -> dict:
    """Every setting behind the tables: generators, seeds, relaxers, validity, matcher, reference,
    stability, metrics, failed batches and the fit calls dedup and novelty made."""
    samples, novelty, stability = inputs.samples, inputs.novelty, inputs.stability
    return {
        "generators": {s["generator"]: {"backend": s["backend"], "settings": s["settings"]} for s in samples},
        "seeds": {f"{s['generator']}/{s['batch']}": s["seed"] for s in samples},
        "relax": inputs.relaxers,
        "validity": inputs.validity[0][1]["validity"] if inputs.validity else {},
        "matcher": inputs.dedup[1]["matcher"],
        "reference": inputs.reference,
        "stability": {k: v for k, v in stability[0][1].items() if k not in ("relaxer", "mp")}
        if stability
        else {},
        "ensemble": {used["member"]["name"]: used["relaxer"] for _, used in inputs.ensemble},
        "embedding": inputs.reference_embeddings[1]["embedding"] if inputs.reference_embeddings else {},
        "mp_failed_systems": {
            chemsys: why
            for _, s in novelty
            for r in s.get("remote", [])
            for chemsys, why in r["failed"].items()
        },
        "metrics": settings,
        "failed_batches": inputs.failed,
        "fit_calls": {
            "dedup": inputs.dedup[1]["fit_calls"],
            "novelty": sum(s["fit_calls"] for _, s in novelty),
        },
    }


def write_metrics(outputs: dict, table: pd.DataFrame, summary: pd.DataFrame, stamp: dict, used: dict) -> None:
    """The per-structure parquet, and the summary as CSV, Markdown and JSON (with the definitions)."""
    io.write_table(outputs["structures"], table, {**used, "units": UNITS})
    with io.atomic_path(outputs["csv"]) as tmp:
        summary.to_csv(tmp, index=False)
    with io.atomic_path(outputs["markdown"]) as tmp:
        tmp.write_text(
            to_markdown(summary.drop(columns=list(stamp)))
            + "\n"
            + "\n".join(f"- {key}: {value}" for key, value in stamp.items())
            + "\n"
            + "".join(
                f"- failed batch {f['generator']}/{f['batch']:04d}: {f['reason']}\n"
                for f in used["failed_batches"]
            )
        )
    io.write_json(
        outputs["json"],
        {
            "definitions": {
                **DEFINITIONS,
                **distributions.DEFINITIONS,
                **ADHERENCE_DEFINITIONS,
                **MODEL_DEFINITION,
                **ensemble.DEFINITIONS,
                **distributions.FRECHET_DEFINITION,
            },
            "units": UNITS,
            "settings": used,
            "summary": summary.to_dict(orient="records"),
        },
    )


def run_metrics_job(
    paths: dict[str, Sequence[str]], outputs: dict, settings: dict, generator_names: Sequence[str] = ()
) -> None:
    """``generator_names`` (config order) get a summary row even without batches (n_batches: 0)."""
    inputs = MetricsInputs.read(paths)
    table = per_structure_table(inputs, settings)
    summary, stamp = campaign_summary(table, inputs, generator_names)
    write_metrics(outputs, table, summary, stamp, settings_used(inputs, settings))


# The headline of a summary (``crystal-campaign summary``): (column, heading, format).
HEADLINE = [
    ("generator", "generator", "{}"),
    ("n_requested", "requested", "{:d}"),
    ("n_evaluated", "evaluated", "{:d}"),
    ("frac_valid", "valid", "{:.0%}"),
    ("frac_unique", "unique", "{:.0%}"),
    ("frac_novel", "novel", "{:.0%}"),
    ("n_sun", "S.U.N.", "{:d}"),
    ("n_msun", "metastable S.U.N.", "{:d}"),
    ("n_batches_failed", "failed batches", "{:d}"),
]


def headline_table(summary: pd.DataFrame) -> list[str]:
    """The per-generator headline counts and rates (of evaluated structures) as aligned text lines."""

    def cell(row: pd.Series, column: str, form: str) -> str:
        value = row.get(column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "n/a"
        return form.format(int(value) if form == "{:d}" else value)

    rows = [[cell(row, column, form) for column, _, form in HEADLINE] for _, row in summary.iterrows()]
    return tables.text_table([[heading for _, heading, _ in HEADLINE], *rows])
