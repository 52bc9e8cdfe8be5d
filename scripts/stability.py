"""Snakemake entry point: energy above the hull of one chunk."""

from crystal_campaign import io, stability

with io.log_to(snakemake.log[0]):
    stability.run_stability_job(
        snakemake.input.structures,
        snakemake.input.reference,
        snakemake.input.energies or None,
        snakemake.output[0],
        snakemake.params.stability,
    )
