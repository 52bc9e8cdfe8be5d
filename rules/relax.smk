# One job per chunk: the potential is loaded once and relaxes the chunk's batches that are missing
# or stale, one file set each; then the chunk's manifest.
rule relax:
    input:
        chunk_output("samples"),
    output:
        chunk_output("relaxed"),
    params:
        relax=RELAX_SETTINGS,
    log:
        f"{RESULTS}/logs/relax/{{generator}}/{{chunk}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/relax/{{generator}}/{{chunk}}.tsv"
    threads: relax_threads(config["relax"])
    retries: config["jobs"]["retries"]
    resources:
        **RELAX_RESOURCES,
        attempt=lambda wildcards, attempt: attempt,
        attempts=ATTEMPTS,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/relax.py"
