# DFT hand-off of the ranked candidates: VASP inputs per candidate and an atomate2 flow (dft.py).
rule dft_inputs:
    input:
        rules.candidates.output.folder,
    output:
        directory(f"{RESULTS}/dft"),
    params:
        dft=config["dft"],
        campaign=config["campaign"],
    log:
        f"{RESULTS}/logs/dft_inputs.log",
    benchmark:
        f"{RESULTS}/benchmarks/dft_inputs.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/dft_inputs.py"
