rule metrics:
    input:
        samples=campaign_files("samples", ".jsonl.gz"),
        relaxed=campaign_files("relaxed", ".jsonl.gz"),
        validity=campaign_files("validity", ".parquet"),
        novelty=campaign_files("novelty", ".parquet"),
        dedup=rules.dedup.output[0],
        stability=campaign_files("stability", ".parquet"),
    output:
        csv=f"{RESULTS}/metrics/summary.csv",
        markdown=f"{RESULTS}/metrics/summary.md",
        json=f"{RESULTS}/metrics/summary.json",
        structures=f"{RESULTS}/metrics/structures.parquet",
    params:
        metrics=config["metrics"],
        generators=list(GENERATORS),
    log:
        f"{RESULTS}/logs/metrics.log",
    benchmark:
        f"{RESULTS}/benchmarks/metrics.tsv"
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/metrics.py"
