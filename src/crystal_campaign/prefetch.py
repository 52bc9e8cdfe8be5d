"""Download every model and reference a campaign needs, ahead of a run.

Cluster compute nodes often have no internet: ``crystal-campaign prefetch`` (or ``snakemake
prefetch``) runs on a login node and fills the caches that sampling, relaxation and novelty jobs
then read offline. Each concern owns its own ``prefetch(settings) -> list[str]`` (one line per
cached item); this module only walks the config. In the workflow each generator's models are
fetched by a job of its own, in the environment its sampling jobs use (MatterGen's under
``--sdm conda``), and ``prefetch`` gathers their lines.
"""

from __future__ import annotations

from pathlib import Path

from crystal_campaign import generators, materials_project, reference, relax
from crystal_campaign.io import read_json, write_json


def generator_items(settings: dict) -> list[str]:
    return [f"generator {settings['name']}: {item}" for item in generators.prefetch(settings)]


def campaign_systems(generator_settings: list[dict], results_dir: str | Path) -> set[str]:
    """Systems the campaign needs: its generators' targets plus those of structures relaxed so far.

    Unconditioned generators (MatterGen, Chemeleon DNG) can produce any chemistry: for them the
    relaxed structures already in ``results_dir`` (``results/{campaign}``) tell; run prefetch
    again after relaxation.
    """
    systems = set().union(*(generators.target_systems(g) for g in generator_settings))
    relaxed = Path(results_dir) / "relaxed"
    if relaxed.is_dir():
        systems |= materials_project.structures_systems(sorted(relaxed.glob("*/*.jsonl.gz")))
    return systems


def relax_and_reference_items(
    relax_settings: dict, reference_settings: dict, generator_settings: list[dict], results_dir: str
) -> list[str]:
    """The relaxer's model, and the reference's data for the campaign's chemical systems."""
    fetched = [f"relax: {item}" for item in relax.prefetch(relax_settings)]
    systems = campaign_systems(generator_settings, results_dir)
    return fetched + [f"reference: {item}" for item in reference.prefetch(reference_settings, systems)]


def prefetch_campaign(config: dict) -> list[str]:
    """Fill every cache the campaign reads; returns one line per model or dataset fetched."""
    fetched = [item for settings in config["generators"] for item in generator_items(settings)]
    results = f"results/{config['campaign']}"
    return fetched + relax_and_reference_items(
        config["relax"], config["reference"], config["generators"], results
    )


def write_manifest(fetched: list[str], manifest_path: str) -> None:
    for line in fetched:
        print(line)
    write_json(manifest_path, {"fetched": fetched})


def run_generator_prefetch_job(settings: dict, manifest_path: str) -> None:
    write_manifest(generator_items(settings), manifest_path)


def run_prefetch_job(
    relax_settings: dict,
    reference_settings: dict,
    generator_settings: list[dict],
    results_dir: str,
    generator_manifests: list[str],
    manifest_path: str,
) -> None:
    """The generators' lines (from their own jobs' manifests), then the relaxer's and the reference's."""
    fetched = [line for manifest in generator_manifests for line in read_json(manifest)["fetched"]]
    others = relax_and_reference_items(relax_settings, reference_settings, generator_settings, results_dir)
    write_manifest(fetched + others, manifest_path)
