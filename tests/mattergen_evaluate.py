"""MatterGen's own evaluation of structure sets, run with the MatterGen environment's interpreter.

    python tests/mattergen_evaluate.py INPUT.json OUTPUT.json

INPUT: ``{"matcher": "ordered" | "disordered", "reference": [structure dicts],
"sets": {name: [structure dicts]}}``. OUTPUT: ``{name: metrics}``, each what
``mattergen.evaluation.evaluate`` returns for that set (no relaxation; the reference as a
``ReferenceDataset`` of the given structures, in order; MatterGen 1.0.3's signature). Energies
are not evaluated: every structure gets 0 eV and the reference holds no element's structure, so
MatterGen skips its energy metrics (missing terminal systems) and computes every structure metric.
"""

from __future__ import annotations

import json
import sys

from mattergen.evaluation.evaluate import evaluate
from mattergen.evaluation.reference.reference_dataset import ReferenceDataset
from mattergen.evaluation.utils.structure_matcher import (
    DefaultDisorderedStructureMatcher,
    DefaultOrderedStructureMatcher,
)
from pymatgen.core import Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry

MATCHERS = {"ordered": DefaultOrderedStructureMatcher, "disordered": DefaultDisorderedStructureMatcher}


def reference_dataset(structures: list[dict]) -> ReferenceDataset:
    entries = [
        ComputedStructureEntry(Structure.from_dict(s), energy=0.0, data={"material_id": f"ref-{i}"})
        for i, s in enumerate(structures)
    ]
    return ReferenceDataset.from_entries("test reference", entries)


def main(input_path: str, output_path: str) -> None:
    with open(input_path) as handle:
        payload = json.load(handle)
    results = {}
    for name, dicts in payload["sets"].items():
        structures = [Structure.from_dict(d) for d in dicts]
        results[name] = evaluate(
            structures,
            relax=False,
            energies=[0.0] * len(structures),
            reference=reference_dataset(payload["reference"]),
            structure_matcher=MATCHERS[payload["matcher"]](),
        )
    with open(output_path, "w") as handle:
        json.dump(results, handle, default=float)


if __name__ == "__main__":
    main(*sys.argv[1:])
