"""Campaign config: schema validation with defaults, and one clear line per problem."""

from __future__ import annotations

import copy
import glob
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from pymatgen.core import Composition, Element

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
RESERVED_GENERATOR_NAMES = {"all"}
# How a relax job runs, never what it computes: the rules keep these out of params (so changing
# them reruns nothing) and the job reads them from the config (``relax.job_settings``).
RELAX_EXECUTION_KEYS = ("threads", "memory_budget_mb", "memory_per_atom_mb")


class ConfigError(ValueError):
    """A campaign config problem; ``problems`` holds one line per bad key or value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _with_defaults(validator_class: type) -> type:
    """A validator class that fills in schema defaults while it validates."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def fill_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema and key not in instance:
                    instance[key] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": fill_defaults})


def _key_path(path: Iterator[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "config"


def _allowed_values(schema: dict) -> str:
    if "enum" in schema:
        return ", ".join(str(v) for v in schema["enum"])
    if "const" in schema:
        return str(schema["const"])
    parts = [f"type {schema['type']}"] if "type" in schema else []
    for keyword, symbol in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if keyword in schema:
            parts.append(f"{symbol} {schema[keyword]}")
    if "minItems" in schema:
        parts.append(f"at least {schema['minItems']} item(s)")
    if "description" in schema:
        parts.append(schema["description"])
    return ", ".join(parts) or "see config/README.md"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = ", ".join(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"{where}: unknown key {', '.join(map(repr, unknown))}; allowed keys: {allowed}"
    if error.validator == "required":
        return f"{where}: missing required key {error.message.split()[0]}"
    mapping_errors = [
        e for e in error.context or [] if e.schema.get("type") != "string" and "const" not in e.schema
    ]
    if error.validator == "anyOf" and isinstance(error.instance, dict) and mapping_errors:
        # A mapping can only be meant for a mapping branch: report that branch's own problem.
        return _describe(jsonschema.exceptions.best_match(mapping_errors))
    if error.validator == "anyOf":
        options = "; ".join(_allowed_values(option) for option in error.validator_value)
        return f"{where}: {error.instance!r} is not allowed; allowed: {options}"
    return f"{where}: {error.instance!r} is not allowed; allowed: {_allowed_values(error.schema)}"


def _schema_problems(config: dict, schema: dict) -> list[str]:
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    return list(dict.fromkeys(_describe(error) for error in errors))


def matching_files(patterns: list[str]) -> list[str]:
    """Files named by paths, directories or glob patterns, sorted, without duplicates."""
    files: set[str] = set()
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            files.update(str(p) for p in path.iterdir() if p.is_file())
        else:
            files.update(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    return sorted(files)


def _element_problems(where: str, symbols: list[str]) -> list[str]:
    return [
        f"{where}: unknown element {symbol!r}; allowed: element symbols such as Na, Cl, Ti"
        for symbol in symbols
        if not Element.is_valid_symbol(symbol)
    ]


def _formula_problem(formula: str) -> str | None:
    """Why a formula cannot be a CSP cell (whole numbers of atoms of known elements), or None."""
    try:
        composition = Composition(formula)
    except Exception as error:  # pymatgen raises several kinds for unparseable formulas
        return f"cannot parse ({error})"
    if not all(isinstance(element, Element) for element in composition):
        return "has unknown elements"
    if composition.num_atoms == 0 or any(amount != int(amount) for amount in composition.values()):
        return "needs whole numbers of atoms"
    return None


def _chemeleon_problems(where: str, generator: dict) -> list[str]:
    problems = []
    if generator["task"] == "csp" and not generator.get("formulas"):
        problems.append(
            f"{where}.formulas: needed for task csp; allowed: a list of formulas such as [NaCl, Ti2O4]"
        )
    if generator["task"] == "dng" and generator.get("formulas"):
        problems.append(f"{where}.formulas: only used by task csp; allowed: remove it, or set task: csp")
    for formula in generator.get("formulas", []):
        problem = _formula_problem(formula)
        if problem:
            problems.append(f"{where}.formulas: {formula!r} {problem}; allowed: formulas such as NaCl, Ti2O4")
    if generator.get("cache_dir") and not Path(generator["cache_dir"]).is_absolute():
        problems.append(
            f"{where}.cache_dir: {generator['cache_dir']!r} is relative; allowed: an absolute directory"
        )
    if generator.get("model_path") and generator.get("cache_dir"):
        problems.append(f"{where}.cache_dir: not used with model_path; allowed: one of model_path, cache_dir")
    if generator.get("model_path") and not Path(generator["model_path"]).is_file():
        problems.append(
            f"{where}.model_path: {generator['model_path']!r} is not a file; allowed: a Chemeleon "
            "checkpoint, or leave it out for the released one (crystal-campaign prefetch)"
        )
    return problems


def _generator_problems(index: int, generator: dict) -> list[str]:
    where = f"generators[{index}]"
    problems = []
    if generator["backend"] == "random":
        if not generator.get("chemical_systems") and not generator.get("compositions"):
            problems.append(
                f"{where}: needs chemical_systems or compositions; allowed: lists such as [Na-Cl]"
            )
        for system in generator.get("chemical_systems", []):
            problems += _element_problems(f"{where}.chemical_systems", system.split("-"))
        if generator["min_atoms"] > generator["max_atoms"]:
            problems.append(
                f"{where}.min_atoms: {generator['min_atoms']} is not allowed; "
                f"allowed: <= max_atoms ({generator['max_atoms']})"
            )
    if generator["backend"] == "chemeleon":
        problems += _chemeleon_problems(where, generator)
    if generator["backend"] == "mattergen":
        from crystal_campaign.generators import mattergen

        problems += mattergen.config_problems(where, generator)
    if generator["backend"] == "import":
        for pattern in generator["paths"]:
            if not matching_files([pattern]):
                problems.append(
                    f"{where}.paths: {pattern!r} matches no file; allowed: existing files, dirs or globs"
                )
    return problems


def _semantic_problems(config: dict) -> list[str]:
    problems = []
    seen: set[str] = set()
    for index, generator in enumerate(config["generators"]):
        name = generator["name"]
        if name in RESERVED_GENERATOR_NAMES:
            problems.append(f"generators[{index}].name: {name!r} is reserved; allowed: any other name")
        if name in seen:
            problems.append(
                f"generators[{index}].name: duplicate generator name {name!r}; allowed: unique names"
            )
        seen.add(name)
        problems += _generator_problems(index, generator)
    for index, source in enumerate(config["reference"]["sources"]):
        problems += _reference_source_problems(index, source)
    problems += _relax_problems(config["relax"])
    problems += _stability_problems(config)
    return problems


def _reference_source_problems(index: int, source: str | dict) -> list[str]:
    where = f"reference.sources[{index}]"
    if not isinstance(source, dict):
        return []
    kind = source.get("source", "file")
    if kind == "mp":
        return _element_problems(
            f"{where}.chemical_systems",
            [e for system in source["chemical_systems"] for e in system.split("-")],
        )
    if kind == "campaign":
        if not (Path(source["path"]) / "dedup" / "classes.parquet").exists():
            return [
                f"{where}.path: {source['path']!r} holds no dedup/classes.parquet; "
                "allowed: the results folder of a finished campaign, e.g. results/old"
            ]
        return []
    if not Path(source["path"]).exists():
        return [
            f"{where}.path: {source['path']!r} does not exist; "
            "allowed: an existing extxyz file, CIF directory or CSV file"
        ]
    return []


def _stability_problems(config: dict) -> list[str]:
    stability = config["stability"]
    problems = []
    if stability["metastable_threshold"] < stability["threshold"]:
        problems.append(
            f"stability.metastable_threshold: {stability['metastable_threshold']} is not allowed; "
            f"allowed: >= stability.threshold ({stability['threshold']})"
        )
    has_mp = any(isinstance(s, dict) and s.get("source") == "mp" for s in config["reference"]["sources"])
    if stability["energy_basis"] == "mp" and not has_mp:
        problems.append(
            "stability.energy_basis: 'mp' is not allowed without a {source: mp} reference source; "
            "allowed: self_consistent, or add {source: mp, include_gnome: ...} to reference.sources"
        )
    return problems


def section_defaults(section: str, schema_path: Path = SCHEMA_PATH) -> dict:
    """The schema defaults of one top-level config section, e.g. ``relax``."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    properties = schema["properties"][section]["properties"]
    return {key: copy.deepcopy(value["default"]) for key, value in properties.items() if "default" in value}


def _relax_problems(relax: dict) -> list[str]:
    """A model file must exist; a MACE model name must be one mace_mp knows (needs mace-torch)."""
    if relax["model_path"] is not None:
        if not Path(relax["model_path"]).is_file():
            return [
                f"relax.model_path: {relax['model_path']!r} does not exist; allowed: an existing model file"
            ]
        return []
    if relax["backend"] != "mace" or relax["model"] is None:
        return []
    try:
        from crystal_campaign.relax.mace import foundation_model_names

        names = foundation_model_names()
    except ImportError:
        return [
            "relax.backend: 'mace' needs mace-torch; allowed: install it (pip install -e '.[mace]') or chgnet"
        ]
    if relax["model"] not in names:
        return [
            f"relax.model: {relax['model']!r} is not a MACE foundation model; allowed: {', '.join(names)}"
        ]
    return []


def validate_config(config: dict, schema_path: Path = SCHEMA_PATH) -> dict:
    """Return a validated copy of ``config`` with defaults filled; raise ConfigError otherwise."""
    config = copy.deepcopy(config)
    schema = yaml.safe_load(Path(schema_path).read_text())
    problems = _schema_problems(config, schema)
    if problems:
        raise ConfigError(problems)
    problems = _semantic_problems(config)
    if problems:
        raise ConfigError(problems)
    return config


def validate_config_or_exit(config: dict, schema_path: Path = SCHEMA_PATH) -> dict:
    """Validate for the Snakefile: on problems print one line each and exit, with no traceback."""
    try:
        return validate_config(config, schema_path)
    except ConfigError as error:
        for problem in error.problems:
            print(f"config error: {problem}", file=sys.stderr)
        sys.exit(1)
