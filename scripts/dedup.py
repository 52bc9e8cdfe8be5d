"""Snakemake entry point: match classes across the whole campaign."""

from crystal_campaign import io, matching

with io.log_to(snakemake.log[0]):
    matching.run_dedup_job(list(snakemake.input), snakemake.output[0], snakemake.params.matching)
