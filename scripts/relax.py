"""Snakemake entry point: relax one batch."""

from crystal_campaign import io, jobs, relax

# Guarded: a GPU job's RMSD workers are spawned processes, which run this file again as
# ``__mp_main__``; they must not relax the batch a second time.
if __name__ == "__main__":
    settings = relax.job_settings(snakemake.params.relax, snakemake.resources, snakemake.threads)
    sample_path, output_path = snakemake.input[0], snakemake.output.structures
    with io.log_to(snakemake.log[0]):
        jobs.run_or_record_failure(
            lambda: relax.run_relax_job(relax.get_relaxer(settings), sample_path, output_path),
            lambda reason: jobs.write_failed_relax_batch(settings, reason, sample_path, output_path),
            snakemake.resources.attempt,
            snakemake.resources.attempts,
            snakemake.log[0],
        )
