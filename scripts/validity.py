"""Snakemake entry point: validity flags of one chunk."""

from crystal_campaign import io, validity

with io.log_to(snakemake.log[0]):
    validity.run_validity_job(snakemake.input[0], snakemake.output[0], snakemake.params.validity)
