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


# Every reference structure reduced once per snapshot and matcher (the expensive part of
# matching); the pickle records both, and novelty jobs refuse one made for anything else.
rule reference_reduced:
    input:
        rules.reference.output.structures,
    output:
        f"{RESULTS}/reference/reduced.pkl",
    params:
        matching=MATCHER_SETTINGS,
    threads: 2
    log:
        f"{RESULTS}/logs/reference_reduced.log",
    benchmark:
        f"{RESULTS}/benchmarks/reference_reduced.tsv"
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/reference_reduced.py"


# Novelty is sharded by batch: each job needs only its batch and the reduced reference.
rule novelty:
    input:
        structures=f"{RESULTS}/relaxed/{{generator}}/{{batch}}.jsonl.gz",
        reference=rules.reference.output.structures,
        reduced=rules.reference_reduced.output[0],
        batch_reduced=f"{RESULTS}/reduced/{{generator}}/{{batch}}.pkl",
    output:
        f"{RESULTS}/novelty/{{generator}}/{{batch}}.parquet",
    params:
        matching=MATCHER_SETTINGS,
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
