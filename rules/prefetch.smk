# Not part of `all`: run `snakemake prefetch` (or `crystal-campaign prefetch`) on a machine with
# internet, e.g. a cluster login node, before jobs that run offline. Local so it never goes to
# a compute node. Each generator's models are fetched in its sampling jobs' environment.
localrules:
    prefetch_generator,
    prefetch,


rule prefetch_generator:
    output:
        f"{RESULTS}/prefetch/{{generator}}.json",
    params:
        generator=sample_settings,
    log:
        f"{RESULTS}/logs/prefetch/{{generator}}.log",
    conda:
        sample_conda_env
    script:
        "../scripts/prefetch_generator.py"


rule prefetch:
    input:
        expand(f"{RESULTS}/prefetch/{{generator}}.json", generator=GENERATORS),
    output:
        f"{RESULTS}/prefetch.json",
    params:
        relax=config["relax"],
        reference=config["reference"],
        generators=config["generators"],
        results=lambda wildcards, output: str(Path(output[0]).parent),  # results/{campaign}
    log:
        f"{RESULTS}/logs/prefetch.log",
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/prefetch.py"
