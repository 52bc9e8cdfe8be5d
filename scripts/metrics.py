"""Snakemake entry point: per-structure table and summary."""

from crystal_campaign import io, metrics

with io.log_to(snakemake.log[0]):
    metrics.run_metrics_job(
        snakemake.input.samples,
        snakemake.input.relaxed,
        snakemake.input.validity,
        snakemake.input.novelty,
        snakemake.input.dedup,
        dict(snakemake.output.items()),
        snakemake.params.metrics,
        snakemake.input.stability,
        generator_names=snakemake.params.generators,
    )
