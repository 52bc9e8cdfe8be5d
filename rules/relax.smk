rule relax:
    input:
        f"{RESULTS}/samples/{{generator}}/{{batch}}.jsonl.gz",
    output:
        structures=f"{RESULTS}/relaxed/{{generator}}/{{batch}}.jsonl.gz",
        sidecar=f"{RESULTS}/relaxed/{{generator}}/{{batch}}.json",
    params:
        relax=config["relax"],
    log:
        f"{RESULTS}/logs/relax/{{generator}}/{{batch}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/relax/{{generator}}/{{batch}}.tsv"
    threads: config["relax"]["threads"]
    resources:
        mem_mb=3000,
        runtime=240,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/relax.py"
