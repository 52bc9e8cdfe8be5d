# Not part of `all`: run `snakemake prefetch` (or `crystal-campaign prefetch`) on a machine with
# internet, e.g. a cluster login node, before jobs that run offline. Local so it never goes to
# a compute node.
localrules:
    prefetch,


rule prefetch:
    output:
        f"{RESULTS}/prefetch.json",
    params:
        config=config,
    log:
        f"{RESULTS}/logs/prefetch.log",
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/prefetch.py"
