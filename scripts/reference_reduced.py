"""Snakemake entry point: reduce the reference snapshot once for the configured matcher."""

from crystal_campaign import io, novelty

with io.log_to(snakemake.log[0]):
    novelty.reduce_reference(
        snakemake.input[0], snakemake.output[0], snakemake.params.matching, processes=snakemake.threads
    )
