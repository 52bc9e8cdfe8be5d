rule sample:
    input:
        imported_files,
    output:
        structures=f"{RESULTS}/samples/{{generator}}/{{batch}}.jsonl.gz",
        sidecar=f"{RESULTS}/samples/{{generator}}/{{batch}}.json",
    params:
        generator=sample_settings,
        campaign=config["campaign"],
    log:
        f"{RESULTS}/logs/sample/{{generator}}/{{batch}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sample/{{generator}}/{{batch}}.tsv"
    threads: 1
    retries: config["jobs"]["retries"]
    resources:
        mem_mb=lambda wildcards: sample_resources(wildcards)["mem_mb"],
        runtime=lambda wildcards: sample_resources(wildcards)["runtime"],
        gpu=lambda wildcards: sample_resources(wildcards)["gpu"],
        attempt=lambda wildcards, attempt: attempt,
        attempts=ATTEMPTS,
    conda:
        sample_conda_env
    script:
        "../scripts/sample.py"
