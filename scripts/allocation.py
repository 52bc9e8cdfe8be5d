"""Snakemake entry point: one round's batches per generator (adaptive rounds)."""

from crystal_campaign import io, rounds

with io.log_to(snakemake.log[0]):
    rounds.run_allocation_job(
        int(snakemake.wildcards.round),
        snakemake.input.yields[0] if snakemake.input.yields else None,
        snakemake.output[0],
        snakemake.params.arms,
        snakemake.params.rounds,
    )
