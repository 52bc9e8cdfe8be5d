"""Snakemake entry point: novelty of one chunk against the reference snapshot."""

from crystal_campaign import io, novelty

with io.log_to(snakemake.log[0]):
    novelty.run_novelty_job(
        snakemake.input.structures,
        snakemake.input.reference,
        snakemake.output[0],
        snakemake.params.matching,
        reduced_path=snakemake.input.reduced,
        chunk_reduced_path=snakemake.input.chunk_reduced,
    )
