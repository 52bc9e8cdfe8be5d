from pathlib import Path

from crystal_campaign import chunks, ensemble, generators, relax, rounds

RESULTS = f"results/{config['campaign']}"
GENERATORS = {generator["name"]: generator for generator in config["generators"]}
# Consecutive batches of a generator that one job handles (crystal_campaign.chunks): Snakemake
# plans a job per chunk and stage, not per batch.
BATCHES_PER_JOB = config["jobs"]["batches_per_job"]


wildcard_constraints:
    generator="|".join(GENERATORS),
    chunk=r"\d\d\d\d+-\d\d\d\d+",
    round=r"\d+",


# Adaptive rounds (rules/rounds.smk): the batches of each round come from its allocation checkpoint.
ROUNDS = config.get("rounds")

# What an allocation computes from: everything but the number of rounds, so raising it (growing
# the campaign) never reruns an earlier round's allocation.
ALLOCATION_SETTINGS = {k: v for k, v in (ROUNDS or {}).items() if k != "n_rounds"}


def round_chunks(n_rounds):
    """(round, generator, chunk) of rounds < n_rounds, round by round, generators in config order:
    each round's batches of a generator cut into chunks."""
    found = []
    for round_index in range(n_rounds):
        allocated = rounds.read_allocation(checkpoints.allocation.get(round=round_index).output[0])
        found += [
            (round_index, name, chunk)
            for name in GENERATORS
            for chunk in chunks.split(allocated["batches"][name], BATCHES_PER_JOB)
        ]
    return found


# Per-chunk outputs, by stage: sample and relax manifests, then the checks' tables.
CHUNK_OUTPUTS = {
    "samples": "samples/{generator}/chunks/{chunk}.json",
    "relaxed": "relaxed/{generator}/chunks/{chunk}.json",
    "descriptions": "descriptions/{generator}/{chunk}.parquet",
    "validity": "validity/{generator}/{chunk}.parquet",
    "reduced": "reduced/{generator}/{chunk}.pkl",
    "novelty": "novelty/{generator}/{chunk}.parquet",
    "stability": "stability/{generator}/{chunk}.parquet",
    "embeddings": "embeddings/{generator}/{chunk}.parquet",
}
# One more per stability ensemble member (ensemble.smk).
ENSEMBLE = ensemble.members(config["stability"])
CHUNK_OUTPUTS |= {f"ensemble_{name}": f"ensemble/{name}/{{generator}}/{{chunk}}.parquet" for name in ENSEMBLE}


wildcard_constraints:
    member="|".join(ENSEMBLE) or "no-member",


def chunk_output(stage):
    """The output pattern of a per-chunk stage, with its {generator} and {chunk} wildcards."""
    return f"{RESULTS}/{CHUNK_OUTPUTS[stage]}"


def chunk_files(stage, chunks_of):
    return [f"{RESULTS}/{CHUNK_OUTPUTS[stage]}".format(generator=g, chunk=c) for g, c in chunks_of]


def yields_inputs(wildcards):
    """The per-chunk outputs of every chunk before round ``wildcards.round``, and the allocations."""
    earlier = [(name, chunk) for _, name, chunk in round_chunks(int(wildcards.round))]
    stages = ("reduced", "novelty", "stability", "samples", "relaxed")
    return {**{stage: chunk_files(stage, earlier) for stage in stages}, "allocations": allocation_files(int(wildcards.round))}


def allocation_files(n_rounds):
    return [f"{RESULTS}/rounds/allocation_{r}.json" for r in range(n_rounds)]


def generator_chunks(name):
    return chunks.split(range(generators.n_batches(GENERATORS[name])), BATCHES_PER_JOB)


def campaign_files(stage):
    """One file per chunk, in campaign order: config order, then batch index; with rounds, round
    by round (an input function, since later rounds' batches are known only once allocated)."""
    if ROUNDS is not None:
        return lambda wildcards: chunk_files(
            stage, [(name, chunk) for _, name, chunk in round_chunks(ROUNDS["n_rounds"])]
        )
    return chunk_files(stage, [(name, chunk) for name in GENERATORS for chunk in generator_chunks(name)])


def ensemble_files(wildcards):
    """Every ensemble member's per-chunk tables, member by member."""
    found = []
    for name in ENSEMBLE:
        files = campaign_files(f"ensemble_{name}")
        found += files(wildcards) if callable(files) else files
    return found


# Keys that decide how many jobs run and what they ask a cluster for (profiles/slurm), never what a
# job computes: kept out of every rule's params, so changing them reruns nothing that exists.
SCHEDULING_KEYS = ("resources", "n_batches", "shards")


def own_settings(section):
    """A config section minus its scheduling keys: what a job's params may hold."""
    return {k: v for k, v in section.items() if k not in SCHEDULING_KEYS}


def sample_settings(wildcards):
    """The generator's own settings, minus n_batches: adding batches never reruns existing ones."""
    return own_settings(GENERATORS[wildcards.generator])


def imported_files(wildcards):
    """The files the chunk's batches read (import generators)."""
    settings = GENERATORS[wildcards.generator]
    return [path for batch in chunks.chunk_batches(wildcards.chunk) for path in generators.input_files(settings, batch)]


def sample_conda_env(wildcards):
    """`--sdm conda`: each backend's sample jobs run in its own environment (e.g. envs/mattergen.yaml)."""
    name = generators.backend(GENERATORS[wildcards.generator]["backend"]).conda_env
    return str(Path(workflow.basedir).parent / "envs" / f"{name}.yaml")


def requested_gpus(section):
    """GPUs a sampling or relax job asks for: one when its ``device`` is ``cuda`` or ``cuda:N``;
    none for ``auto`` and ``cpu`` (``auto`` still uses a GPU it finds); ``resources: {gpus: N}``
    asks for N whatever the device, e.g. to give ``auto`` a GPU on a cluster."""
    on_cuda = str(section.get("device", "cpu")).startswith("cuda")
    return section.get("resources", {}).get("gpus", 1 if on_cuda else 0)


def relax_threads(section):
    """CPU threads of a relax job: a few beside a GPU (the spare ones measure RMSDs meanwhile)."""
    return section["threads"] or (4 if requested_gpus(section) else 1)


def job_resources(section, mem_mb, runtime):
    """SLURM resources of a sampling or relax job: ``section["resources"]`` over the defaults."""
    requested = section.get("resources", {})
    return {
        "mem_mb": requested.get("mem_mb", mem_mb),
        "runtime": requested.get("runtime", runtime),
        "gpu": requested_gpus(section),
    }


def sample_resources(wildcards):
    return job_resources(GENERATORS[wildcards.generator], mem_mb=2000, runtime=60)


# A job's attempts (jobs.retries + 1) reach it as a resource: the retry count is not a setting of
# what it computes, so changing it reruns nothing.
ATTEMPTS = config["jobs"]["retries"] + 1


# What relax and reference_energies jobs compute: how they run (threads, memory packing) reaches
# the job as its threads and resources (relax.execution_resources), so changing it reruns nothing.
RELAX_SETTINGS = {
    key: value for key, value in own_settings(config["relax"]).items() if key not in relax.EXECUTION_KEYS
}


def relax_memory_mb(section):
    """Memory a relax job asks for unless its ``resources`` say: without a GPU, the batched model
    calls take their ``memory_budget_mb`` from the job's own memory, on top of the process (torch,
    the model, the structures)."""
    if requested_gpus(section) or section["engine"] == "per-structure" or section["backend"] == "none":
        return 3000
    return int(section["memory_budget_mb"] or relax.DEFAULT_MEMORY_BUDGET_MB) + 1500


RELAX_RESOURCES = {
    **job_resources(config["relax"], mem_mb=relax_memory_mb(config["relax"]), runtime=240),
    **relax.execution_resources(config["relax"]),
}
# The matcher alone: the dedup shard count must not rerun novelty.
MATCHER_SETTINGS = own_settings(config["matching"])


# Cheap rules run where Snakemake runs (the login node), not as SLURM jobs.
localrules:
    validity,
    reference,
    describe_reference,
    metrics,
    candidates,
    plots,
    hulls,
    dft_inputs,
    allocation,
    round_yields,
    rounds_table,
