from crystal_campaign.dedup import dedup_shards

# Fixed hash shards: a structure's shard is the hash of its chemical system, which never splits a
# match bucket, so shards are exact and known when the DAG is built (no checkpoint re-evaluation).
DEDUP_SHARDS = range(dedup_shards(config["matching"]))
# Order in which earlier runs walked the structures: read by the shards, rewritten by the merge.
# It is state, not an output, so Snakemake never deletes it; it keeps class ids stable under growth.
WALK_ORDER = f"{RESULTS}/dedup/walk_order.txt"


# Each relaxed chunk reduced once (primitive Niggli cells: the expensive part of matching), read by
# the dedup shards and the chunk's novelty job.
rule reduce:
    input:
        chunk_output("relaxed"),
    output:
        chunk_output("reduced"),
    params:
        matching=MATCHER_SETTINGS,
    log:
        f"{RESULTS}/logs/reduce/{{generator}}/{{chunk}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/reduce/{{generator}}/{{chunk}}.tsv"
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/reduce.py"


rule dedup_shard:
    input:
        campaign_files("reduced"),
    output:
        f"{RESULTS}/dedup/shards/{{shard}}.parquet",
    params:
        matching=config["matching"],
        walk_order=WALK_ORDER,
    log:
        f"{RESULTS}/logs/dedup_shard/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dedup/{{shard}}.tsv"
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/dedup_shard.py"


rule dedup:
    input:
        expand(f"{RESULTS}/dedup/shards/{{shard}}.parquet", shard=DEDUP_SHARDS),
    output:
        f"{RESULTS}/dedup/classes.parquet",
    params:
        walk_order=WALK_ORDER,
    log:
        f"{RESULTS}/logs/dedup.log",
    benchmark:
        f"{RESULTS}/benchmarks/dedup.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/dedup.py"
