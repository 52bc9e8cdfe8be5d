# One job per chunk of batches (crystal_campaign.chunks): it samples the batches that are missing
# or stale, one file set each, and writes the chunk's manifest.
rule sample:
    input:
        imported_files,
    output:
        chunk_output("samples"),
    params:
        generator=sample_settings,
        campaign=config["campaign"],
    log:
        f"{RESULTS}/logs/sample/{{generator}}/{{chunk}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sample/{{generator}}/{{chunk}}.tsv"
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
