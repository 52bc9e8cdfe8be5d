"""Energy above the convex hull (pymatgen PhaseDiagram) of every evaluated structure.

Two energy bases, chosen by ``stability.energy_basis`` and recorded in every table:

* ``self_consistent``: the hull of the reference structures (the snapshot: embedded crystals,
  local files, earlier campaigns) relaxed with the campaign's own potential. Works offline.
* ``mp``: the Materials Project GGA/GGA+U entries of the structure's chemical system and all
  its subsystems (MP2020-corrected, as served). The relaxer's energy becomes a GGA/GGA+U
  ComputedStructureEntry and gets the correction its training data needs
  (``energy_correction``): CHGNet was trained on MP2020-corrected MPtrj energies, so its
  energies are already on that scale; potentials trained on raw MPtrj energies (MACE-MP) get
  MaterialsProject2020Compatibility applied.

E_hull is ``PhaseDiagram.get_decomp_and_e_above_hull(allow_negative=True)``: a structure below
the reference hull has a negative E_hull. A structure without an energy, or whose chemical
system lacks a reference end-member, gets NaN and a reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import pandas as pd
from pymatgen.analysis.phase_diagram import PhaseDiagram
from pymatgen.core import Composition, Structure
from pymatgen.entries.computed_entries import ComputedEntry, ComputedStructureEntry

from crystal_campaign import chunks, ensemble, io, materials_project, relax

# Results whose energy places a structure on a hull.
ENERGY_STATUSES = ("converged", "unconverged", "single_point")
COLUMNS = [
    "id",
    "e_above_hull",
    "e_above_hull_reason",
    "decomposition",
    "stable",
    "metastable",
    "hull_energy_per_atom",
    "formation_energy_per_atom",
]


def resolve_correction(settings: dict, relaxer: dict) -> str:
    if settings["energy_correction"] != "auto":
        return settings["energy_correction"]
    return relax.backend(relaxer["backend"]).energy_correction


def _hubbards(composition: Composition, u_settings: dict) -> dict[str, float]:
    """The U values MP's GGA+U runs use for this composition (oxides and fluorides of 3d/4d/5d TMs)."""
    symbols = {el.symbol for el in composition.elements}
    anion = next((a for a in ("F", "O") if a in symbols), None)
    if anion is None:
        return {}
    return {el: u for el, u in u_settings[anion].items() if el in symbols}


def mp2020_entry(
    structure: Structure, energy: float, correction: str, entry_id: str
) -> ComputedStructureEntry | None:
    """The relaxer's energy as a GGA or GGA+U entry, MP2020-corrected when ``correction`` says so."""
    from pymatgen.entries.compatibility import MaterialsProject2020Compatibility

    compatibility = MaterialsProject2020Compatibility(check_potcar=False)
    hubbards = _hubbards(structure.composition, compatibility.u_settings)
    entry = ComputedStructureEntry(
        structure,
        energy,
        parameters={"run_type": "GGA+U" if hubbards else "GGA", "hubbards": hubbards},
        entry_id=entry_id,
    )
    if correction == "none":
        return entry
    return compatibility.process_entry(entry)


class Hulls:
    """Phase diagrams per chemical system, built once from the reference entries of its subsystems."""

    def __init__(self, entries: Iterable[ComputedEntry], missing: dict[str, str] | None = None) -> None:
        self.entries = list(entries)
        self.missing = missing or {}  # chemical system -> why its reference entries are unavailable
        self._diagrams: dict[str, PhaseDiagram | str] = {}

    def diagram(self, chemsys: str) -> PhaseDiagram | str:
        """The phase diagram of ``chemsys`` or the reason there is none."""
        if chemsys not in self._diagrams:
            elements = set(chemsys.split("-"))
            unavailable = [s for s in materials_project.subsystems(chemsys) if s in self.missing]
            inside = [e for e in self.entries if {el.symbol for el in e.composition.elements} <= elements]
            terminals = {e.composition.elements[0].symbol for e in inside if e.composition.is_element}
            if unavailable:
                self._diagrams[chemsys] = "reference entries unavailable for " + "; ".join(
                    f"{s}: {self.missing[s]}" for s in unavailable
                )
            elif elements - terminals:
                self._diagrams[chemsys] = "no reference end-member for " + ", ".join(
                    sorted(elements - terminals)
                )
            else:
                try:
                    self._diagrams[chemsys] = PhaseDiagram(inside)
                except ValueError as error:  # e.g. degenerate reference energies
                    self._diagrams[chemsys] = f"no phase diagram: {error}"
        return self._diagrams[chemsys]

    def e_above_hull(self, entry: ComputedEntry) -> tuple[float, str | None, str | None]:
        """(E_hull in eV/atom, decomposition products, reason when there is no number)."""
        diagram = self.diagram(entry.composition.chemical_system)
        if isinstance(diagram, str):
            return math.nan, None, diagram
        decomposition, e_hull = diagram.get_decomp_and_e_above_hull(entry, allow_negative=True)
        products = " + ".join(
            f"{e.composition.reduced_formula} ({e.entry_id or 'ref'}) {amount:.3f}"
            for e, amount in sorted(decomposition.items(), key=lambda item: -item[1])
        )
        return float(e_hull), products, None

    def formation_energy(self, entry: ComputedEntry) -> float:
        """Formation energy per atom (eV) against the end-members of the entry's own diagram."""
        diagram = self.diagram(entry.composition.chemical_system)
        return math.nan if isinstance(diagram, str) else float(diagram.get_form_energy_per_atom(entry))


def energy_problem(record: dict) -> str | None:
    """Why a relaxed record has no usable energy, or None."""
    if record["structure"] is None:
        return f"not evaluated: {record.get('reason') or record['status']}"
    if record["status"] == "skipped":
        return f"no energy: relaxation skipped ({record.get('reason')})"
    if record["status"] == "not_relaxed":
        return "no energy: relax backend none"
    if not math.isfinite(record_energy(record)):
        return "no energy: non-finite or missing"
    return None


def record_energy(record: dict) -> float:
    """Total energy (eV) of a relaxed record; batch JSON may hold numpy floats written as strings."""
    energy = record.get("energy")
    return math.nan if energy is None else float(energy)


def stability_rows(
    records: Sequence[dict], hulls: Hulls, settings: dict, correction: str | None
) -> pd.DataFrame:
    """One row per record: E_hull, reason, decomposition, the threshold flags, and the point the
    structure is on its phase diagram (energy per atom as the hull sees it, after any correction,
    and formation energy per atom), which the hull figures draw.

    ``correction`` is None for the self-consistent basis (plain composition + energy entries),
    else ``mp2020`` or ``none`` for MP-compatible entries.
    """
    rows = []
    for record in records:
        reason = energy_problem(record)
        e_hull, products, hull_energy, formation = math.nan, None, math.nan, math.nan
        if reason is None:
            structure = record["structure"]
            if correction is None:
                entry = ComputedEntry(structure.composition, record_energy(record), entry_id=record["id"])
            else:
                entry = mp2020_entry(structure, record_energy(record), correction, record["id"])
            if entry is None:
                reason = "MP2020 compatibility rejected the entry"
            else:
                e_hull, products, reason = hulls.e_above_hull(entry)
                hull_energy, formation = entry.energy_per_atom, hulls.formation_energy(entry)
        rows.append(
            {
                "id": record["id"],
                "e_above_hull": e_hull,
                "e_above_hull_reason": reason,
                "decomposition": products,
                "stable": bool(e_hull <= settings["threshold"]),
                "metastable": bool(e_hull <= settings["metastable_threshold"]),
                "hull_energy_per_atom": hull_energy,
                "formation_energy_per_atom": formation,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def relax_reference(reference_path: str, relax_settings: dict, output_path: str, mode: str = "relax") -> None:
    """Relax every reference structure with the campaign's potential (the self-consistent hull);
    ``mode`` single_point: their energies as given (an ensemble member's hull)."""
    relaxer = relax.get_relaxer(relax_settings)
    records = io.read_records(reference_path)
    results = relax.relax_records(relaxer, records, mode)
    io.write_records(
        output_path,
        [
            {
                "id": record["id"],
                "formula": record["structure"].composition.formula,
                "status": result.status,
                "energy": float(result.energy),
                "reason": result.reason,
            }
            for record, result in zip(records, results, strict=True)
        ],
    )
    io.write_json(
        io.sidecar_path(output_path),
        {"relaxer": relaxer.settings(), "mode": mode, "reference_sha256": io.file_sha256(reference_path)},
    )


def self_consistent_entries(energies_path: str) -> list[ComputedEntry]:
    with_energy = [
        r
        for r in io.read_records(energies_path)
        if r["status"] in ENERGY_STATUSES and math.isfinite(record_energy(r))
    ]
    return [ComputedEntry(Composition(r["formula"]), record_energy(r), entry_id=r["id"]) for r in with_energy]


def mp_hulls(reference_sidecar: dict, systems: Iterable[str]) -> tuple[Hulls, list[dict]]:
    """Hulls from the MP entries of ``systems`` and all their subsystems."""
    needed = {sub for chemsys in systems for sub in materials_project.subsystems(chemsys)}
    found, failed, used = materials_project.lookup(reference_sidecar, needed)
    return Hulls([e for data in found for e in materials_project.reference_entries(data)], failed), used


def reference_hulls(
    energy_basis: str, reference_path: str, energies_path: str | None, systems: Iterable[str]
) -> tuple[Hulls, list[dict]]:
    """The reference hulls of ``energy_basis`` (and the MP sources used): the stability step's and
    the hull figures', so both place a structure on the same diagram."""
    if energy_basis == "self_consistent":
        return Hulls(self_consistent_entries(energies_path)), []
    return mp_hulls(io.read_json(io.sidecar_path(reference_path)), systems)


def energy_scale(
    settings: dict,
    relaxers: Sequence[dict],
    reference_path: str,
    energies_path: str | None,
    systems: set[str],
) -> tuple[Hulls, str | None, dict]:
    """The hulls, the correction (None: self-consistent) and what to record for energies from
    ``relaxers`` (the settings of the potential that computed them; none when nothing did)."""
    hulls, used = reference_hulls(settings["energy_basis"], reference_path, energies_path, systems)
    if settings["energy_basis"] == "self_consistent":
        energies = io.read_sidecar(energies_path)
        reference_sha256 = energies["relaxer"].get("checkpoint_sha256")
        if any(relaxer.get("checkpoint_sha256") != reference_sha256 for relaxer in relaxers):
            raise ValueError("reference energies were computed with another potential than this chunk")
        return hulls, None, {"energy_basis": "self_consistent", "reference_energies": energies}
    correction = resolve_correction(settings, relaxers[0]) if relaxers else settings["energy_correction"]
    return hulls, correction, {"energy_basis": "mp", "energy_correction": correction, "mp": used}


def chemical_systems(records: Iterable[dict]) -> set[str]:
    return {r["structure"].composition.chemical_system for r in records if r["structure"] is not None}


def run_stability_job(
    relaxed_manifest: str, reference_path: str, energies_path: str | None, output_path: str, settings: dict
) -> None:
    """E_hull of every structure of a relaxed chunk, on hulls built once for all its systems."""
    batches = chunks.read_manifest(relaxed_manifest)
    records = [record for entry in batches for record in io.read_records(entry["path"])]
    # A batch whose relax job kept failing (jobs.py) has no energies and no loaded potential.
    relaxed = [entry["sidecar"]["relaxer"] for entry in batches if not entry["sidecar"]["failed"]]
    relaxer = (relaxed or [batches[0]["sidecar"]["relaxer"]])[0]
    hulls, correction, recorded = energy_scale(
        settings, relaxed, reference_path, energies_path, chemical_systems(records)
    )
    table = stability_rows(records, hulls, settings, correction)
    io.write_table(output_path, table, {"stability": settings, "relaxer": relaxer, **recorded})


def run_ensemble_reference_job(
    reference_path: str, output_path: str, member: dict, relax_section: dict
) -> None:
    """A member's energies of the reference structures, evaluated as it evaluates the campaign's."""
    relax_reference(
        reference_path, ensemble.member_relax_settings(member, relax_section), output_path, member["mode"]
    )


def run_ensemble_job(
    relaxed_manifest: str,
    reference_path: str,
    energies_path: str | None,
    output_path: str,
    settings: dict,
    member: dict,
    relax_section: dict,
) -> None:
    """One member's E_hull of every structure of a relaxed chunk (``settings``: the stability section)."""
    records = io.read_chunk_records(relaxed_manifest)
    relaxer = relax.get_relaxer(ensemble.member_relax_settings(member, relax_section))
    # only structures the campaign's potential placed on its hull: the others keep their reason
    results = relax.relax_records(
        relaxer,
        [{**r, "structure": None} if energy_problem(r) else r for r in records],
        member["mode"],
    )
    evaluated = [
        {
            "id": r["id"],
            "structure": result.structure,
            "status": result.status,
            "energy": result.energy,
            "reason": energy_problem(r) or result.reason,
        }
        for r, result in zip(records, results, strict=True)
    ]
    used = relaxer.settings()
    ran = any(result.status in ENERGY_STATUSES for result in results)
    hulls, correction, recorded = energy_scale(
        settings, [used] if ran else [], reference_path, energies_path, chemical_systems(evaluated)
    )
    table = stability_rows(evaluated, hulls, settings, correction)
    table["status"] = [r["status"] for r in evaluated]
    io.write_table(output_path, table, {"stability": settings, "member": member, "relaxer": used, **recorded})
