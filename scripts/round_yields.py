"""Snakemake entry point: S.U.N. per generator and round of the batches before a round."""

from crystal_campaign import io, rounds

with io.log_to(snakemake.log[0]):
    rounds.run_yields_job(
        rounds.chunks_of(dict(snakemake.input.items())),
        snakemake.output[0],
        snakemake.params.arms,
        snakemake.params.matching,
    )
