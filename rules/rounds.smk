# Adaptive rounds (rounds.py): round r's allocation is a checkpoint over the yields of rounds < r;
# the batches it allocates are ordinary sample/relax/... jobs, numbered on per generator.
checkpoint allocation:
    input:
        yields=lambda w: [f"{RESULTS}/rounds/yields_{w.round}.json"] if int(w.round) > 0 else [],
    output:
        f"{RESULTS}/rounds/allocation_{{round}}.json",
    params:
        rounds=ALLOCATION_SETTINGS,
        arms=list(GENERATORS),
    log:
        f"{RESULTS}/logs/rounds/allocation_{{round}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rounds/allocation_{{round}}.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/allocation.py"


# S.U.N. per generator and round of every batch before round {round}: a structure is unique only
# against everything earlier, all generators and rounds.
rule round_yields:
    input:
        unpack(yields_inputs),
    output:
        f"{RESULTS}/rounds/yields_{{round}}.json",
    params:
        matching=MATCHER_SETTINGS,
        arms=list(GENERATORS),
    log:
        f"{RESULTS}/logs/rounds/yields_{{round}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rounds/yields_{{round}}.tsv"
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/round_yields.py"


# The allocations with their inputs (successes, trials, hours, draws) and what each round yielded.
rule rounds_table:
    input:
        allocations=allocation_files(ROUNDS["n_rounds"]) if ROUNDS else [],
        yields=f"{RESULTS}/rounds/yields_{ROUNDS['n_rounds']}.json" if ROUNDS else [],
    output:
        table=f"{RESULTS}/rounds/allocation.csv",
        figure=report(
            f"{RESULTS}/plots/rounds.png",
            caption="../workflow/report/rounds.rst",
            category="6. Rounds",
            subcategory="allocation",
            labels={"figure": "rounds"},
        ),
    params:
        plots=config["plots"],
        arms=list(GENERATORS),
    log:
        f"{RESULTS}/logs/rounds/table.log",
    benchmark:
        f"{RESULTS}/benchmarks/rounds/table.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/rounds_table.py"
