# Figures and the summary table for `snakemake --report` (captions in workflow/report/); the PNGs
# are also plain files under results/{campaign}/plots/. Cheap, so part of `all`.
# Figure name -> (report category, subcategory); the caption is workflow/report/{name}.rst.
FIGURES = {
    "rates": ("2. Metrics", "rates"),
    "e_hull": ("2. Metrics", "stability"),
    "atoms_per_cell": ("3. Structures", "cells"),
    "space_groups": ("3. Structures", "symmetry"),
    "elements": ("3. Structures", "composition"),
    "relaxation_steps": ("4. Relaxation", "steps"),
}


rule plots:
    input:
        structures=rules.metrics.output.structures,
        summary=rules.metrics.output.csv,
        definitions=rules.metrics.output.json,
    output:
        summary=report(
            f"{RESULTS}/plots/summary.html",
            caption="../workflow/report/summary.rst",
            category="1. Summary",
            subcategory="table",
            labels={"table": "summary"},
        ),
        **{
            name: report(
                f"{RESULTS}/plots/{name}.png",
                caption=f"../workflow/report/{name}.rst",
                category=category,
                subcategory=subcategory,
                labels={"figure": name.replace("_", " ")},
            )
            for name, (category, subcategory) in FIGURES.items()
        },
    params:
        plots=config["plots"],
        campaign=config["campaign"],
    log:
        f"{RESULTS}/logs/plots.log",
    benchmark:
        f"{RESULTS}/benchmarks/plots.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/plots.py"
