# Discovery candidates: metastable S.U.N. structures as CIF, ranked by E_hull, with an index table,
# and the same table for the report.
# A plain path beside the per-chunk list, as in rules/metrics.smk (planning time).
rule candidates:
    input:
        structures=f"{RESULTS}/metrics/structures.parquet",
        relaxed=campaign_files("relaxed"),
    output:
        folder=directory(f"{RESULTS}/candidates"),
        table=report(
            f"{RESULTS}/plots/candidates.html",
            caption="../workflow/report/candidates.rst",
            category="1. Summary",
            subcategory="candidates",
            labels={"table": "candidates"},
        ),
    params:
        campaign=config["campaign"],
    log:
        f"{RESULTS}/logs/candidates.log",
    benchmark:
        f"{RESULTS}/benchmarks/candidates.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/candidates.py"
