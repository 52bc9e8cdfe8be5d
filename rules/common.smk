from crystal_campaign.generators import importer

RESULTS = f"results/{config['campaign']}"
GENERATORS = {generator["name"]: generator for generator in config["generators"]}


wildcard_constraints:
    generator="|".join(GENERATORS),
    batch=r"\d\d\d\d+",


def n_batches(generator):
    if generator["backend"] == "import":
        return importer.n_batches(generator)
    return generator["n_batches"]


def campaign_files(stage, suffix):
    """One file per batch, in campaign order: config order, then batch index."""
    return [
        f"{RESULTS}/{stage}/{name}/{batch:04d}{suffix}"
        for name, generator in GENERATORS.items()
        for batch in range(n_batches(generator))
    ]


def sample_settings(wildcards):
    """The generator's own settings, minus n_batches: adding batches never reruns existing ones."""
    return {k: v for k, v in GENERATORS[wildcards.generator].items() if k != "n_batches"}


def imported_files(wildcards):
    generator = GENERATORS[wildcards.generator]
    if generator["backend"] != "import":
        return []
    return importer.batch_files(generator, int(wildcards.batch))


def sample_conda_env(wildcards):
    """`--sdm conda`: MatterGen's sample jobs run in its own environment (see envs/mattergen.yaml)."""
    name = "mattergen" if GENERATORS[wildcards.generator]["backend"] == "mattergen" else "campaign"
    return str(Path(workflow.basedir).parent / "envs" / f"{name}.yaml")
