"""Snakemake entry point: relax one batch."""

from crystal_campaign import io, relax

with io.log_to(snakemake.log[0]):
    relaxer = relax.get_relaxer({**snakemake.params.relax, "threads": snakemake.threads})
    relax.run_relax_job(relaxer, snakemake.input[0], snakemake.output.structures)
