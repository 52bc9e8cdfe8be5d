"""Snakemake entry point: one sampling batch."""

from functools import partial

from crystal_campaign import generators, io, jobs

settings, campaign, batch = (
    snakemake.params.generator,
    snakemake.params.campaign,
    int(snakemake.wildcards.batch),
)
with io.log_to(snakemake.log[0]):
    jobs.run_or_record_failure(
        partial(generators.sample, settings, campaign, batch, snakemake.output.structures),
        partial(
            jobs.write_failed_sample_batch,
            snakemake.output.structures,
            settings,
            campaign,
            batch,
            len(snakemake.input) or settings["batch_size"],
        ),
        snakemake.resources.attempt,
        snakemake.resources.attempts,
        snakemake.log[0],
    )
