"""Snakemake entry point: one stability ensemble member's E_hull of one chunk's structures."""

from crystal_campaign import io, relax, stability

# Guarded: a GPU job's RMSD workers are spawned processes, which run this file again.
if __name__ == "__main__":
    with io.log_to(snakemake.log[0]):
        stability.run_ensemble_job(
            snakemake.input.structures,
            snakemake.input.reference,
            snakemake.input.energies or None,
            snakemake.output[0],
            snakemake.params.stability,
            snakemake.params.member,
            relax.job_settings(snakemake.params.relax, snakemake.resources, snakemake.threads),
        )
