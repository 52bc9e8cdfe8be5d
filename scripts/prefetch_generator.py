"""Snakemake entry point: download one generator's models, in its sampling jobs' environment."""

from crystal_campaign import io
from crystal_campaign.prefetch import run_generator_prefetch_job

with io.log_to(snakemake.log[0]):
    run_generator_prefetch_job(snakemake.params.generator, snakemake.output[0])
