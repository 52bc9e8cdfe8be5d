"""Snakemake entry point: merge the dedup shards into the campaign's class table."""

from crystal_campaign import dedup, io

with io.log_to(snakemake.log[0]):
    dedup.run_dedup_merge_job(list(snakemake.input), snakemake.output[0], snakemake.params.walk_order)
