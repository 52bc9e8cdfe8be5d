"""Snakemake entry point: the allocation table and figure of an adaptive-rounds campaign."""

from crystal_campaign import io, rounds

with io.log_to(snakemake.log[0]):
    rounds.run_rounds_table_job(
        snakemake.input.allocations,
        snakemake.input.yields,
        dict(snakemake.output.items()),
        snakemake.params.arms,
        snakemake.params.plots,
    )
