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


# The reference snapshot described once, for the distribution metrics (distributions.py).
rule describe_reference:
    input:
        rules.reference.output.structures,
    output:
        f"{RESULTS}/reference/descriptions.parquet",
    params:
        symprec=config["metrics"]["symprec"],
    log:
        f"{RESULTS}/logs/describe_reference.log",
    benchmark:
        f"{RESULTS}/benchmarks/describe_reference.tsv"
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/describe_reference.py"


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


# Novelty is sharded by chunk: each job needs only its chunk and the reduced reference.
rule novelty:
    input:
        structures=chunk_output("relaxed"),
        reference=rules.reference.output.structures,
        reduced=rules.reference_reduced.output[0],
        chunk_reduced=chunk_output("reduced"),
    output:
        chunk_output("novelty"),
    params:
        matching=MATCHER_SETTINGS,
    log:
        f"{RESULTS}/logs/novelty/{{generator}}/{{chunk}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/novelty/{{generator}}/{{chunk}}.tsv"
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/novelty.py"
