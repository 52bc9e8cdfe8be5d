"""Snakemake entry point: per-structure table and summary."""

from crystal_campaign import io, metrics

with io.log_to(snakemake.log[0]):
    metrics.run_metrics_job(
        dict(snakemake.input.items()),
        dict(snakemake.output.items()),
        snakemake.params.metrics,
        generator_names=snakemake.params.generators,
    )
