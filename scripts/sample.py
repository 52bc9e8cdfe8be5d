"""Snakemake entry point: one sampling batch."""

import sys

from crystal_campaign import generators, io

problem = None
with io.log_to(snakemake.log[0]):
    try:
        generators.sample(
            snakemake.params.generator,
            snakemake.params.campaign,
            int(snakemake.wildcards.batch),
            snakemake.output.structures,
        )
    except generators.GeneratorUnavailable as error:
        problem = str(error)
        print(problem)  # the whole log: one line saying what to do (Snakemake shows failed logs)
if problem:
    sys.exit(1)
