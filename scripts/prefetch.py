"""Snakemake entry point: the relaxer's and the reference's downloads, after the generators' own."""

from crystal_campaign import io
from crystal_campaign.prefetch import run_prefetch_job

with io.log_to(snakemake.log[0]):
    run_prefetch_job(
        snakemake.params.relax,
        snakemake.params.reference,
        snakemake.params.generators,
        snakemake.params.results,
        list(snakemake.input),
        snakemake.output[0],
    )
