# Structure embeddings for the Frechet distance (crystal_campaign.embeddings), only with
# metrics.embedding.model set: every relaxed chunk's and the reference snapshot's.
EMBEDDING = config["metrics"]["embedding"]
EMBEDDING_ON = EMBEDDING["model"] != "none"


rule embed:
    input:
        chunk_output("relaxed"),
    output:
        chunk_output("embeddings"),
    params:
        embedding=EMBEDDING,
    log:
        f"{RESULTS}/logs/embed/{{generator}}/{{chunk}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embed/{{generator}}/{{chunk}}.tsv"
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/embed.py"


rule embed_reference:
    input:
        rules.reference.output.structures,
    output:
        f"{RESULTS}/reference/embeddings.parquet",
    params:
        embedding=EMBEDDING,
    log:
        f"{RESULTS}/logs/embed_reference.log",
    benchmark:
        f"{RESULTS}/benchmarks/embed_reference.tsv"
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../envs/campaign.yaml"
    script:
        "../scripts/embed_reference.py"
