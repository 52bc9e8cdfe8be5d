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


# Phase diagrams of the campaign's binary and ternary systems from the stability step's own
# reference entries and energy basis, and the per-system table (hulls.py).
rule hulls:
    input:
        structures=rules.metrics.output.structures,
        reference=rules.reference.output.structures,
        energies=rules.reference_energies.output.structures if SELF_CONSISTENT else [],
    output:
        figures=report(
            directory(f"{RESULTS}/plots/hulls"),
            patterns=["{system}.png"],
            caption="../workflow/report/hull.rst",
            category="5. Chemical systems",
            subcategory="phase diagrams",
            labels={"system": "{system}"},
        ),
        page=report(
            f"{RESULTS}/plots/hulls.html",
            caption="../workflow/report/hull_systems.rst",
            category="5. Chemical systems",
            subcategory="table",
            labels={"table": "chemical systems"},
        ),
        table=f"{RESULTS}/hulls/systems.parquet",
    params:
        plots=config["plots"],
        campaign=config["campaign"],
    log:
        f"{RESULTS}/logs/hulls.log",
    benchmark:
        f"{RESULTS}/benchmarks/hulls.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/hulls.py"
