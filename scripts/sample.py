"""Snakemake entry point: one sampling batch."""

import sys

from crystal_campaign import generators, io

try:
    with io.log_to(snakemake.log[0]):
        generators.sample(
            snakemake.params.generator,
            snakemake.params.campaign,
            int(snakemake.wildcards.batch),
            snakemake.output.structures,
        )
except generators.GeneratorUnavailable as error:
    sys.exit(str(error))  # one line saying what to do; the traceback is in the log
