"""Download every model and reference a campaign needs, ahead of a run.

Cluster compute nodes often have no internet: ``crystal-campaign prefetch`` (or ``snakemake
prefetch``) runs on a login node and fills the caches that sampling, relaxation and novelty jobs
then read offline. Each concern owns its own ``prefetch(settings) -> list[str]`` (one line per
cached item); this module only walks the config.
"""

from __future__ import annotations

from crystal_campaign import generators, materials_project, reference, relax
from crystal_campaign.io import write_json


def prefetch_campaign(config: dict) -> list[str]:
    """Fill every cache the campaign reads; returns one line per model or dataset fetched."""
    fetched: list[str] = []
    for settings in config["generators"]:
        fetched += [f"generator {settings['name']}: {item}" for item in generators.prefetch(settings)]
    fetched += [f"relax: {item}" for item in relax.prefetch(config["relax"])]
    systems = materials_project.campaign_systems(config)
    fetched += [f"reference: {item}" for item in reference.prefetch(config["reference"], systems)]
    return fetched


def run_prefetch_job(config: dict, manifest_path: str) -> None:
    fetched = prefetch_campaign(config)
    for line in fetched:
        print(line)
    write_json(manifest_path, {"fetched": fetched})
