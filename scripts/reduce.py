"""Snakemake entry point: reduce the structures of one relaxed chunk for matching (dedup and novelty)."""

from crystal_campaign import io, matching

with io.log_to(snakemake.log[0]):
    matching.run_reduce_job(snakemake.input[0], snakemake.output[0], snakemake.params.matching)
