"""Snakemake entry point: snapshot of the configured novelty reference."""

from crystal_campaign import io, reference

with io.log_to(snakemake.log[0]):
    reference.build_reference(snakemake.params.reference["sources"], snakemake.output.structures)
