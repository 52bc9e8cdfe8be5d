"""Snakemake entry point: structure embeddings of the reference snapshot."""

from crystal_campaign import embeddings, io, relax

with io.log_to(snakemake.log[0]):
    relax.configure_threads(snakemake.threads)
    embeddings.run_embed_reference_job(snakemake.input[0], snakemake.output[0], snakemake.params.embedding)
