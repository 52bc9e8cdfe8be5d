SELF_CONSISTENT = config["stability"]["energy_basis"] == "self_consistent"
# The ensemble's members have their own jobs (ensemble.smk): adding one reruns no stability job.
STABILITY_SETTINGS = {key: value for key, value in config["stability"].items() if key != "ensemble"}


# The self-consistent hull: every reference structure relaxed with the campaign's own potential.
rule reference_energies:
    input:
        rules.reference.output.structures,
    output:
        structures=f"{RESULTS}/reference/energies.jsonl.gz",
        sidecar=f"{RESULTS}/reference/energies.json",
    params:
        relax=RELAX_SETTINGS,
    log:
        f"{RESULTS}/logs/reference_energies.log",
    benchmark:
        f"{RESULTS}/benchmarks/reference_energies.tsv"
    threads: relax_threads(config["relax"])
    resources:
        **RELAX_RESOURCES,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/reference_energies.py"


rule stability:
    input:
        structures=chunk_output("relaxed"),
        reference=rules.reference.output.structures,
        energies=rules.reference_energies.output.structures if SELF_CONSISTENT else [],
    output:
        chunk_output("stability"),
    params:
        stability=STABILITY_SETTINGS,
    log:
        f"{RESULTS}/logs/stability/{{generator}}/{{chunk}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/stability/{{generator}}/{{chunk}}.tsv"
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/stability.py"
