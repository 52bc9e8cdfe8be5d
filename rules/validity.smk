rule validity:
    input:
        f"{RESULTS}/relaxed/{{generator}}/{{batch}}.jsonl.gz",
    output:
        f"{RESULTS}/validity/{{generator}}/{{batch}}.parquet",
    params:
        validity=config["validity"],
    log:
        f"{RESULTS}/logs/validity/{{generator}}/{{batch}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/validity/{{generator}}/{{batch}}.tsv"
    resources:
        mem_mb=1000,
        runtime=30,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/validity.py"
