# Training: one job per (dataset, method, seed), `python -m pcdeq train` writing a run record.


rule train:
    """Train one run. Rerunning an interrupted job resumes from RUN.json.ckpt (kept by the
    core beside the record); exit status 3 means the run diverged: its record (status
    'diverged', the finished epochs) is kept as the output and reported in the tables."""
    output:
        record=f"{RUNS}/{{dataset}}/{{method}}/seed{{seed}}.json",
    log:
        f"{LOGS}/train/{{dataset}}/{{method}}/seed{{seed}}.log",
    params:
        method=train_method,
        sizes=train_size_args,
        device=config["device"],
        data_root=config["data_root"],
    threads: config["threads"]
    resources:
        gpu=GPU,
        mem_mb=config["mem_mb"],
        runtime=train_runtime,
    wildcard_constraints:
        dataset=one_of(DATASETS),
        method=r"pcDEQ-[12]-(L|SC|MC)-(ReLU6|Tanh|Softsign|Sigmoid)(-aug)?",
        seed=r"\d+",
    shell:
        "{PY:q} -m pcdeq train --dataset {wildcards.dataset} --method {params.method:q}"
        " --seed {wildcards.seed} --out {output.record:q} {params.sizes}"
        " --device {params.device} --data-root {params.data_root:q} --threads {threads}"
        " > {log:q} 2>&1 || test $? -eq 3"


rule reference_record:
    """Copy one fresh run record into the committed reference folder."""
    input:
        f"{RUNS}/{{dataset}}/{{method}}/seed{{seed}}.json",
    output:
        f"{REFERENCE}/{{dataset}}/{{method}}/seed{{seed}}.json",
    log:
        f"{LOGS}/reference/{{dataset}}/{{method}}/seed{{seed}}.log",
    wildcard_constraints:
        dataset=one_of(DATASETS),
        method=r"pcDEQ-[12]-(L|SC|MC)-(ReLU6|Tanh|Softsign|Sigmoid)(-aug)?",
        seed=r"\d+",
    shell:
        "cp {input:q} {output:q} 2> {log:q}"
