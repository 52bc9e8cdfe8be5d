"""Campaign config: schema validation with defaults, and one clear line per problem.

The schema is the package's (``crystal_campaign.schema``) plus each generator backend's own keys;
the checks the schema cannot express are asked of the generator and relaxer registries, so this
module knows no backend.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from crystal_campaign import ensemble, generators, relax
from crystal_campaign.checks import element_problems
from crystal_campaign.schema import STABILITY_PRESETS, base_schema

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


def generator_schema(common: dict, own: dict) -> dict:
    """A generator entry's schema: the common keys, then the backend's own (which may override one)."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "backend", *own["required"]],
        "properties": {**common, **own["properties"]},
    }


def campaign_schema() -> dict:
    """The shipped schema with each registered generator backend's keys and the backend names."""
    schema = base_schema()
    common = schema["$defs"].pop("generator_common")
    items = schema["properties"]["generators"]["items"]
    own_schemas = generators.settings_schemas()
    items["properties"]["backend"] = {"enum": list(own_schemas)}
    for name, own in own_schemas.items():
        schema["$defs"][f"{name}_generator"] = generator_schema(common, own)
        backend_is = {"properties": {"backend": {"const": name}}}
        items["allOf"].append({"if": backend_is, "then": {"$ref": f"#/$defs/{name}_generator"}})
    schema["properties"]["relax"]["properties"]["backend"]["enum"] = list(relax.BACKEND_MODULES)
    schema["properties"]["relax"]["properties"]["engine"]["enum"] = relax.ENGINE_NAMES
    member = schema["properties"]["stability"]["properties"]["ensemble"]["items"]["properties"]
    member["backend"]["enum"] = [name for name in relax.BACKEND_MODULES if name != "none"]
    return schema


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
        problems += generators.config_problems(f"generators[{index}]", generator)
    for index, source in enumerate(config["reference"]["sources"]):
        problems += _reference_source_problems(index, source)
    problems += relax.config_problems(config["relax"])
    problems += _stability_problems(config)
    problems += _ensemble_problems(config["stability"], config["relax"])
    problems += _rounds_problems(config)
    return problems


def _rounds_problems(config: dict) -> list[str]:
    rounds = config.get("rounds")
    if rounds is None:
        return []
    names = [generator["name"] for generator in config["generators"]]
    return [
        f"rounds.first_round.{name}: unknown generator; allowed: {', '.join(names)}"
        for name in rounds["first_round"]
        if name not in names
    ]


def _reference_source_problems(index: int, source: str | dict) -> list[str]:
    where = f"reference.sources[{index}]"
    if not isinstance(source, dict):
        return []
    kind = source.get("source", "file")
    if kind == "mp":
        return element_problems(
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


def _ensemble_problems(section: dict, relax_section: dict) -> list[str]:
    problems = []
    filled = [ensemble.member(entry) for entry in section["ensemble"]]
    names = [member["name"] for member in filled]
    for index, (member, name) in enumerate(zip(filled, names, strict=True)):
        where = f"stability.ensemble[{index}]"
        if names.count(name) > 1:
            problems.append(f"{where}.name: {name!r} names two members; allowed: unique names (give name:)")
        settings = ensemble.member_relax_settings(member, relax_section)
        problems += [line.replace("relax.", f"{where}.", 1) for line in relax.config_problems(settings)]
    return list(dict.fromkeys(problems))


def _apply_stability_preset(config: dict) -> list[str]:
    """Set the thresholds of ``stability.preset`` (before defaults fill them in), unless given too."""
    section = config.get("stability")
    if not isinstance(section, dict) or section.get("preset") not in STABILITY_PRESETS:
        return []  # no preset, or one the schema refuses
    preset = section["preset"]
    thresholds = STABILITY_PRESETS[preset]
    given = [key for key in thresholds if key in section]
    if given:
        return [
            f"stability.{key}: set by stability.preset {preset} ({thresholds[key]}); "
            f"allowed: the preset or the thresholds, not both"
            for key in given
        ]
    section.update(thresholds)
    return []


def validate_config(config: dict) -> dict:
    """Return a validated copy of ``config`` with defaults filled; raise ConfigError otherwise."""
    config = copy.deepcopy(config)
    problems = _apply_stability_preset(config) + _schema_problems(config, campaign_schema())
    if problems:
        raise ConfigError(problems)
    problems = _semantic_problems(config)
    if problems:
        raise ConfigError(problems)
    return config


class StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first_line[key]})",
                    key_node.start_mark,
                )
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def load_config_file(path: str | Path) -> dict:
    """The config in a YAML (or JSON) file; a missing file, a syntax error or a duplicate key is one
    line naming the file and where."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such config file"]) from None
    except OSError as error:
        raise ConfigError([f"{path}: cannot be read ({error.strerror})"]) from None
    try:
        loaded = yaml.load(text, Loader=StrictLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}{where}: {error.problem or error.context}"]) from None
    except yaml.YAMLError as error:
        raise ConfigError([f"{path}: not valid YAML ({error})"]) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            [f"{path}: a config is a mapping of keys (campaign, generators, ...), not a list or value"]
        )
    return loaded


def _or_exit(work: Callable[[], dict]) -> dict:
    """``work()``; on config problems print one line each and exit, with no traceback."""
    try:
        return work()
    except ConfigError as error:
        for problem in error.problems:
            print(f"config error: {problem}", file=sys.stderr)
        sys.exit(1)


def validate_config_or_exit(config: dict, config_files: Sequence[str | Path] = ()) -> dict:
    """Validate for the Snakefile; ``config_files``: the files ``config`` came from, read again
    strictly (Snakemake's own reader keeps the last of a duplicated key)."""

    def work() -> dict:
        for path in config_files:
            load_config_file(path)
        return validate_config(config)

    return _or_exit(work)


def read_config_or_exit(path: str | Path) -> dict:
    """A config file read strictly and validated, for the command line."""
    return _or_exit(lambda: validate_config(load_config_file(path)))
