"""Snakemake entry point: report figures and the summary table as HTML."""

from crystal_campaign import io, plots

with io.log_to(snakemake.log[0]):
    plots.run_plots_job(
        snakemake.input.structures,
        snakemake.input.summary,
        snakemake.input.definitions,
        dict(snakemake.output.items()),
        snakemake.params.plots,
        snakemake.params.campaign,
    )
