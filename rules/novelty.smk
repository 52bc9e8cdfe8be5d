rule reference:
    output:
        structures=f"{RESULTS}/reference/reference.jsonl.gz",
        sidecar=f"{RESULTS}/reference/reference.json",
    params:
        reference=config["reference"],
    log:
        f"{RESULTS}/logs/reference.log",
    benchmark:
        f"{RESULTS}/benchmarks/reference.tsv"
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/reference.py"


rule novelty:
    input:
        structures=f"{RESULTS}/relaxed/{{generator}}/{{batch}}.jsonl.gz",
        reference=rules.reference.output.structures,
    output:
        f"{RESULTS}/novelty/{{generator}}/{{batch}}.parquet",
    params:
        matching=config["matching"],
    log:
        f"{RESULTS}/logs/novelty/{{generator}}/{{batch}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/novelty/{{generator}}/{{batch}}.tsv"
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/novelty.py"
