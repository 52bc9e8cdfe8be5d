"""Snakemake entry point: what each structure of the reference snapshot is (for distribution metrics)."""

from crystal_campaign import description, io

with io.log_to(snakemake.log[0]):
    description.run_describe_reference_job(snakemake.input[0], snakemake.output[0], snakemake.params.symprec)
