rule relax:
    input:
        f"{RESULTS}/samples/{{generator}}/{{batch}}.jsonl.gz",
    output:
        structures=f"{RESULTS}/relaxed/{{generator}}/{{batch}}.jsonl.gz",
        sidecar=f"{RESULTS}/relaxed/{{generator}}/{{batch}}.json",
    params:
        relax=RELAX_SETTINGS,
    log:
        f"{RESULTS}/logs/relax/{{generator}}/{{batch}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/relax/{{generator}}/{{batch}}.tsv"
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
