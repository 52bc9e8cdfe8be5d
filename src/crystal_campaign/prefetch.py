"""Download every model and reference a campaign needs, ahead of a run.

Cluster compute nodes often have no internet: ``crystal-campaign prefetch`` (or ``snakemake
prefetch``) runs on a login node and fills the caches that sampling, relaxation and novelty jobs
then read offline. Each concern owns its own ``prefetch(settings) -> list[str]`` (one line per
cached item); this module only walks the config. In the workflow each generator's models are
fetched by a job of its own, in the environment its sampling jobs use (MatterGen's under
``--sdm conda``), and ``prefetch`` gathers their lines.
"""

from __future__ import annotations

from crystal_campaign import generators, materials_project, reference, relax
from crystal_campaign.io import read_json, write_json


def generator_items(settings: dict) -> list[str]:
    return [f"generator {settings['name']}: {item}" for item in generators.prefetch(settings)]


def relax_and_reference_items(config: dict) -> list[str]:
    fetched = [f"relax: {item}" for item in relax.prefetch(config["relax"])]
    systems = materials_project.campaign_systems(config)
    return fetched + [f"reference: {item}" for item in reference.prefetch(config["reference"], systems)]


def prefetch_campaign(config: dict) -> list[str]:
    """Fill every cache the campaign reads; returns one line per model or dataset fetched."""
    fetched = [item for settings in config["generators"] for item in generator_items(settings)]
    return fetched + relax_and_reference_items(config)


def write_manifest(fetched: list[str], manifest_path: str) -> None:
    for line in fetched:
        print(line)
    write_json(manifest_path, {"fetched": fetched})


def run_generator_prefetch_job(settings: dict, manifest_path: str) -> None:
    write_manifest(generator_items(settings), manifest_path)


def run_prefetch_job(config: dict, generator_manifests: list[str], manifest_path: str) -> None:
    """The generators' lines (from their own jobs' manifests), then the relaxer's and the reference's."""
    fetched = [line for manifest in generator_manifests for line in read_json(manifest)["fetched"]]
    write_manifest(fetched + relax_and_reference_items(config), manifest_path)
