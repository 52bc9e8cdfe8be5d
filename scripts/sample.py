"""Snakemake entry point: the sampling batches of one chunk."""

from crystal_campaign import chunks, io, jobs

with io.log_to(snakemake.log[0]):
    jobs.run_sample_chunk(
        snakemake.params.generator,
        snakemake.params.campaign,
        chunks.chunk_batches(snakemake.wildcards.chunk),
        snakemake.output[0],
        jobs.Attempt(snakemake.resources.attempt, snakemake.resources.attempts, snakemake.log[0]),
    )
