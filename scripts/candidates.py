"""Snakemake entry point: S.U.N. candidates as CIF with an index table, and the report's table."""

from crystal_campaign import candidates, io

with io.log_to(snakemake.log[0]):
    candidates.write_candidates(
        snakemake.input.structures,
        snakemake.input.relaxed,
        snakemake.output.folder,
        snakemake.output.table,
        snakemake.params.campaign,
    )
