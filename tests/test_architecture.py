"""The library's shape (docs/architecture.md): strict layers (so no import cycle), backends found
through their registries, and a package that works without the checkout."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO
from crystal_campaign import generators, relax
from crystal_campaign.generators.base import GeneratorBackend
from crystal_campaign.relax import engines
from crystal_campaign.relax.base import RelaxerBackend

PACKAGE = REPO / "src" / "crystal_campaign"

# Lowest first; a module may import only modules of lower layers. The same list is drawn in
# docs/architecture.md.
LAYERS = [
    [
        "testhooks",
        "schema",
        "snakemake_signals",
        "snakemake_incomplete",
        "known_crystals",
        "tables",
        "distributions",
        "ensemble",
    ],
    ["batch_files", "screening", "pruning", "checks"],
    ["chunks"],
    ["io"],
    ["validity", "description", "matching", "materials_project", "generators.base", "relax.base"],
    [
        "dedup",
        "reference",
        "novelty",
        "generators.random_search",
        "generators.importer",
        "generators.chemeleon",
        "generators.mattergen",
        "generators.mattergen_runner",
        "relax.batched",
        "relax.per_structure",
        "relax.none",
        "relax.sevennet",
        "relax.sevennet_runner",
    ],
    ["relax.torch_sim_engine", "relax.engines"],
    ["relax.potential"],
    ["generators", "relax.chgnet", "relax.mace"],
    ["relax", "metrics", "candidates", "plots", "dft", "embeddings"],
    ["stability", "config", "status", "rounds", "jobs"],
    ["prefetch", "hulls"],
    ["cli"],
]
LAYER = {module: index for index, modules in enumerate(LAYERS) for module in modules}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Project modules a file imports, at the top or inside functions (``TYPE_CHECKING`` blocks aside)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.startswith("crystal_campaign."):
                module = name.removeprefix("crystal_campaign.")
                while module and module not in LAYER:
                    module = module.rpartition(".")[0]
                if module:
                    found.add(module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py") if path.name != "__init__.py"}
    modules.update(
        {module_name(path): path for path in PACKAGE.rglob("__init__.py") if path != PACKAGE / "__init__.py"}
    )
    return {name: imported_modules(path) - {name} for name, path in modules.items()}


def test_every_module_has_a_layer():
    assert set(import_graph()) == set(LAYER)


def test_no_module_imports_one_of_its_own_or_a_higher_layer():
    upward = [
        f"{module} (layer {LAYER[module]}) imports {target} (layer {LAYER[target]})"
        for module, targets in import_graph().items()
        for target in targets
        if LAYER[target] >= LAYER[module]
    ]
    assert upward == []


@pytest.mark.parametrize("name", list(generators.BACKEND_MODULES))
def test_generator_backends_come_from_the_registry(name):
    backend = generators.backend(name)
    assert isinstance(backend, GeneratorBackend)
    assert {"required", "properties"} <= set(backend.settings_schema)


@pytest.mark.parametrize("name", list(relax.BACKEND_MODULES))
def test_relaxer_backends_come_from_the_registry(name):
    assert isinstance(relax.backend(name), RelaxerBackend)


@pytest.mark.parametrize("name", list(engines.ENGINE_MODULES))
def test_relaxation_engines_come_from_the_registry(name):
    assert callable(engines.engine(name).relax)
    with pytest.raises(ValueError, match=r"^unknown relax engine 'lbfgs'; allowed: auto, torch-sim, "):
        engines.engine("lbfgs")


def test_an_unknown_backend_is_one_line_never_a_fallback():
    with pytest.raises(
        ValueError, match=r"^unknown relax backend 'vasp'; allowed: chgnet, mace, none, sevennet$"
    ):
        relax.get_relaxer({"backend": "vasp"})
    with pytest.raises(ValueError, match=r"^unknown generator backend 'gan'; allowed: random, import, "):
        generators.sample({"backend": "gan", "name": "g"}, "c", 0, "out.jsonl.gz")


def test_an_installed_wheel_validates_configs_and_fills_defaults_without_the_checkout(tmp_path):
    """Schema and defaults ship as package data: a job on a node with only the package installed."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            tmp_path,
            REPO,
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("crystal_campaign-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    script = (
        "import crystal_campaign, json; from crystal_campaign.config import validate_config; "
        "from crystal_campaign.relax import get_relaxer; "
        "config = validate_config({'campaign': 'c', 'generators': [{'name': 'g', 'backend': 'random', "
        "'n_batches': 1, 'batch_size': 1, 'chemical_systems': ['Na-Cl']}]}); "
        "print(json.dumps([crystal_campaign.__file__, config['relax']['fmax'], config['matching']['ltol'], "
        "get_relaxer({'backend': 'none'}).settings()]))"
    )
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    printed = subprocess.run(
        [sys.executable, "-c", script], cwd=away, env=env, check=True, capture_output=True, text=True
    )
    location, fmax, ltol, relaxer = json.loads(printed.stdout)
    assert Path(location).is_relative_to(site)
    assert (fmax, ltol, relaxer) == (0.1, 0.2, {"backend": "none"})
