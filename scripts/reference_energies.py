"""Snakemake entry point: relax the reference structures with the campaign's potential."""

from crystal_campaign import io, relax, stability

with io.log_to(snakemake.log[0]):
    stability.relax_reference(
        snakemake.input[0],
        relax.job_settings(snakemake.params.relax, snakemake.resources, snakemake.threads),
        snakemake.output.structures,
    )
