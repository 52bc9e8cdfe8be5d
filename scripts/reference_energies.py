"""Snakemake entry point: relax the reference structures with the campaign's potential."""

from crystal_campaign import io, relax, stability

# Guarded: a GPU job's RMSD workers are spawned processes, which run this file again as
# ``__mp_main__``; they must not relax the references a second time.
if __name__ == "__main__":
    with io.log_to(snakemake.log[0]):
        stability.relax_reference(
            snakemake.input[0],
            relax.job_settings(snakemake.params.relax, snakemake.resources, snakemake.threads),
            snakemake.output.structures,
        )
