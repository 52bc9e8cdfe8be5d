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
from pymatgen.core import Element

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
RESERVED_GENERATOR_NAMES = {"all"}


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
        if isinstance(source, dict) and not Path(source["path"]).exists():
            problems.append(
                f"reference.sources[{index}].path: {source['path']!r} does not exist; "
                "allowed: an existing extxyz file, CIF directory or CSV file"
            )
    return problems


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
