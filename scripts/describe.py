"""Snakemake entry point: what each structure of one relaxed chunk is (formula, space group, ...)."""

from crystal_campaign import description, io

with io.log_to(snakemake.log[0]):
    description.run_describe_job(snakemake.input[0], snakemake.output[0], snakemake.params.symprec)
