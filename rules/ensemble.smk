# Ensemble stability (crystal_campaign.ensemble): each member's E_hull of every chunk's structures,
# against a hull of its own energies of the reference structures (self-consistent basis).
rule ensemble_reference_energies:
    input:
        rules.reference.output.structures,
    output:
        f"{RESULTS}/reference/ensemble/{{member}}.jsonl.gz",
    params:
        member=lambda wildcards: ENSEMBLE[wildcards.member],
        relax=RELAX_SETTINGS,
    log:
        f"{RESULTS}/logs/ensemble_reference_energies/{{member}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ensemble_reference_energies/{{member}}.tsv"
    threads: relax_threads(config["relax"])
    resources:
        **RELAX_RESOURCES,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/ensemble_reference_energies.py"


rule ensemble_stability:
    input:
        structures=chunk_output("relaxed"),
        reference=rules.reference.output.structures,
        energies=rules.ensemble_reference_energies.output[0] if SELF_CONSISTENT else [],
    output:
        f"{RESULTS}/ensemble/{{member}}/{{generator}}/{{chunk}}.parquet",
    params:
        stability=STABILITY_SETTINGS,
        member=lambda wildcards: ENSEMBLE[wildcards.member],
        relax=RELAX_SETTINGS,
    log:
        f"{RESULTS}/logs/ensemble/{{member}}/{{generator}}/{{chunk}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ensemble/{{member}}/{{generator}}/{{chunk}}.tsv"
    threads: relax_threads(config["relax"])
    resources:
        **RELAX_RESOURCES,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/ensemble_stability.py"
