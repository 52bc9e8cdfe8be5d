# Discovery candidates: metastable S.U.N. structures as CIF, ranked by E_hull, with an index table.
rule candidates:
    input:
        structures=rules.metrics.output.structures,
        relaxed=campaign_files("relaxed", ".jsonl.gz"),
    output:
        directory(f"{RESULTS}/candidates"),
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
