rule dedup:
    input:
        campaign_files("relaxed", ".jsonl.gz"),
    output:
        f"{RESULTS}/dedup/classes.parquet",
    params:
        matching=config["matching"],
    log:
        f"{RESULTS}/logs/dedup.log",
    benchmark:
        f"{RESULTS}/benchmarks/dedup.tsv"
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/dedup.py"
