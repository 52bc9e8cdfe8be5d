# Inputs that stand beside per-batch lists are plain paths, not `rules.X.output`: Snakemake looks
# every listed file up among a rule's dependencies on other rules' outputs, hashing the whole list
# each time, quadratic in the batches (dry run of 2,000 batches 33.4 -> 27.3 s, of 4,000 68.3 -> 57.6 s).
rule metrics:
    input:
        samples=campaign_files("samples", ".jsonl.gz"),
        relaxed=campaign_files("relaxed", ".jsonl.gz"),
        validity=campaign_files("validity", ".parquet"),
        novelty=campaign_files("novelty", ".parquet"),
        dedup=f"{RESULTS}/dedup/classes.parquet",
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
