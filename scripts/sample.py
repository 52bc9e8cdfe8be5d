"""Snakemake entry point: one sampling batch."""

from crystal_campaign import generators, io

with io.log_to(snakemake.log[0]):
    generators.sample(
        snakemake.params.generator,
        snakemake.params.campaign,
        int(snakemake.wildcards.batch),
        snakemake.output.structures,
    )
