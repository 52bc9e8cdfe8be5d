"""Snakemake entry point: phase diagrams and the per-system table of the campaign's chemical systems."""

from crystal_campaign import hulls, io

with io.log_to(snakemake.log[0]):
    hulls.run_hulls_job(
        snakemake.input.structures,
        snakemake.input.reference,
        snakemake.input.energies or None,
        dict(snakemake.output.items()),
        snakemake.params.plots,
        snakemake.params.campaign,
    )
