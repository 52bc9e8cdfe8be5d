# Inputs that stand beside per-chunk lists are plain paths, not `rules.X.output`: Snakemake looks
# every listed file up among a rule's dependencies on other rules' outputs, hashing the whole list
# each time, quadratic in the list's length.
rule metrics:
    input:
        samples=campaign_files("samples"),
        relaxed=campaign_files("relaxed"),
        descriptions=campaign_files("descriptions"),
        validity=campaign_files("validity"),
        novelty=campaign_files("novelty"),
        dedup=f"{RESULTS}/dedup/classes.parquet",
        stability=campaign_files("stability"),
        reference_descriptions=rules.describe_reference.output[0],
        ensemble=ensemble_files,
        embeddings=campaign_files("embeddings") if EMBEDDING_ON else [],
        reference_embeddings=rules.embed_reference.output[0] if EMBEDDING_ON else [],
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
