rule validity:
    input:
        chunk_output("relaxed"),
    output:
        chunk_output("validity"),
    params:
        validity=config["validity"],
    log:
        f"{RESULTS}/logs/validity/{{generator}}/{{chunk}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/validity/{{generator}}/{{chunk}}.tsv"
    resources:
        mem_mb=1000,
        runtime=30,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/validity.py"


# Formula, chemical system, sites, space group and density of each structure: the base of the
# per-structure table, so the metrics job never parses a structure.
rule describe:
    input:
        chunk_output("relaxed"),
    output:
        chunk_output("descriptions"),
    params:
        symprec=config["metrics"]["symprec"],
    log:
        f"{RESULTS}/logs/describe/{{generator}}/{{chunk}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/describe/{{generator}}/{{chunk}}.tsv"
    resources:
        mem_mb=1000,
        runtime=30,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/describe.py"
