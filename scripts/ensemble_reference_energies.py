"""Snakemake entry point: one stability ensemble member's energies of the reference structures."""

from crystal_campaign import io, relax, stability

# Guarded: a GPU job's RMSD workers are spawned processes, which run this file again.
if __name__ == "__main__":
    with io.log_to(snakemake.log[0]):
        stability.run_ensemble_reference_job(
            snakemake.input[0],
            snakemake.output[0],
            snakemake.params.member,
            relax.job_settings(snakemake.params.relax, snakemake.resources, snakemake.threads),
        )
