"""Snakemake entry point: match classes of one dedup shard (the chemical systems hashing to it)."""

from crystal_campaign import dedup, io

with io.log_to(snakemake.log[0]):
    dedup.run_dedup_shard_job(
        list(snakemake.input),
        snakemake.output[0],
        snakemake.params.matching,
        int(snakemake.wildcards.shard),
        snakemake.params.walk_order,
    )
