"""The campaign config schema, shipped inside the package: the one source of every default.

``config.schema.yaml`` beside this module holds every section but the generator backends' own
keys, which each backend module declares (``SETTINGS_SCHEMA``) and ``crystal_campaign.config``
adds through the generator registry. Jobs on a node with only the package installed read their
defaults from here, never from a checkout.
"""

from __future__ import annotations

import copy
import functools
from importlib import resources

import yaml

SCHEMA_FILE = "config.schema.yaml"

# Thresholds (eV/atom) of other benchmarks, by ``stability.preset``; without one, MatterGen's
# stable <= 0.1 (S.U.N.) and this project's metastable <= 0.2.
STABILITY_PRESETS = {
    "lemat_genbench": {"threshold": 0.0, "metastable_threshold": 0.1},
    "chemeleon2": {"threshold": 0.0, "metastable_threshold": 0.1},
}


@functools.cache
def _base_schema() -> dict:
    return yaml.safe_load(resources.files(__package__).joinpath(SCHEMA_FILE).read_text())


def base_schema() -> dict:
    """A fresh copy of the shipped schema (without the generator backends' keys)."""
    return copy.deepcopy(_base_schema())


def section_defaults(section: str) -> dict:
    """The schema defaults of one top-level config section, e.g. ``relax`` or ``matching``."""
    properties = _base_schema()["properties"][section]["properties"]
    return {key: copy.deepcopy(value["default"]) for key, value in properties.items() if "default" in value}
