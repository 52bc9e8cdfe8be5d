"""Snakemake entry point: download every model and reference the campaign needs."""

from crystal_campaign import io
from crystal_campaign.prefetch import run_prefetch_job

with io.log_to(snakemake.log[0]):
    run_prefetch_job(snakemake.params.config, snakemake.output[0])
