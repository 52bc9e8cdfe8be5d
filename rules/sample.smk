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
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        sample_conda_env
    script:
        "../scripts/sample.py"
