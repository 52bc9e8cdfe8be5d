"""Snakemake entry point: relax the batches of one chunk."""

from crystal_campaign import io, jobs, relax

# Guarded: a GPU job's RMSD workers are spawned processes, which run this file again as
# ``__mp_main__``; they must not relax the chunk a second time.
if __name__ == "__main__":
    with io.log_to(snakemake.log[0]):
        jobs.run_relax_chunk(
            snakemake.params.relax,
            relax.job_settings(snakemake.params.relax, snakemake.resources, snakemake.threads),
            snakemake.input[0],
            snakemake.output[0],
            jobs.Attempt(snakemake.resources.attempt, snakemake.resources.attempts, snakemake.log[0]),
        )
