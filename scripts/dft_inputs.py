"""Snakemake entry point: VASP inputs and an atomate2 flow for the ranked candidates."""

from crystal_campaign import dft, io

with io.log_to(snakemake.log[0]):
    dft.write_dft_inputs(
        snakemake.input[0], snakemake.output[0], snakemake.params.dft, snakemake.params.campaign
    )
