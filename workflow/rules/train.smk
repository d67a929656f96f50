# Training: one job per (dataset, method, seed), `python -m pcdeq train` writing a run record.


# With runs_from: committed the records are read as committed: nothing is trained, and no rule
# may write records or weights into results/<profile>/ (the train and reference_record rules
# would); only model_evidence measures the committed weights there.
if not COMMITTED:

    rule dataset:
        """Make sure a dataset that is not shipped is on disk (torchvision downloads it when
        online; Fashion-MNIST also from Debian's package) before any training job starts: offline
        without it, the workflow stops here, naming what to install or put where."""
        output:
            f"{LOGS}/data/{{dataset}}.json",
        log:
            f"{LOGS}/data/{{dataset}}.log",
        params:
            data_root=config["data_root"],
        wildcard_constraints:
            dataset=one_of(DOWNLOADED_DATASETS) or "(?!)",
        shell:
            "{PY:q} -m pcdeq data --dataset {wildcards.dataset} --data-root {params.data_root:q}"
            " > {output:q} 2> {log:q} || {{ cat {log:q} >&2; exit 1; }}"


    rule train:
        """Train one run. The core writes the record after every epoch, so it trains into
        RUN.json.part and the output appears only once the run has ended: an interrupted
        workflow never mistakes a partial record for a finished one, and rerunning the job
        resumes from RUN.json.part.ckpt. Exit status 3 means the run diverged: its record
        (status 'diverged', the finished epochs) becomes the output and the tables report it.
        The final weights (RUN.pt, pcdeq.load_trained) are written before the record."""
        input:
            data=train_data,
        output:
            record=f"{RUNS}/{{dataset}}/{{method}}/seed{{seed}}.json",
            weights=f"{RUNS}/{{dataset}}/{{method}}/seed{{seed}}.pt",
        log:
            f"{LOGS}/train/{{dataset}}/{{method}}/seed{{seed}}.log",
        params:
            method=train_method,
            flags=train_flags,
            device=config["device"],
            data_root=config["data_root"],
        threads: config["threads"]
        resources:
            gpu=GPU,
            mem_mb=config["mem_mb"],
            runtime=train_runtime,
        wildcard_constraints:
            dataset=one_of(DATASETS),
            method=METHOD_WILDCARD,
            seed=r"\d+",
        shell:
            """
            rc=0
            {PY:q} -m pcdeq train --dataset {wildcards.dataset} --method {params.method:q} \
                --seed {wildcards.seed} --out {output.record:q}.part --weights {output.weights:q}.part \
                {params.flags} \
                --device {params.device} --data-root {params.data_root:q} --threads {TORCH_THREADS} \
                > {log:q} 2>&1 || rc=$?
            if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then
                tail -n 15 {log:q} >&2  # the core's own error message, right in Snakemake's output
                exit $rc
            fi
            mv {output.weights:q}.part {output.weights:q}
            mv {output.record:q}.part {output.record:q}
            """


    rule reference_record:
        """Copy one fresh run record (or the weights of a `reference_weights` run) into the
        committed reference folder."""
        input:
            f"{RUNS}/{{dataset}}/{{method}}/seed{{seed}}.{{ext}}",
        output:
            f"{REFERENCE}/{{dataset}}/{{method}}/seed{{seed}}.{{ext}}",
        log:
            f"{LOGS}/reference/{{dataset}}/{{method}}/seed{{seed}}.{{ext}}.log",
        wildcard_constraints:
            dataset=one_of(DATASETS),
            method=METHOD_WILDCARD,
            seed=r"\d+",
            ext="json|pt",
        localrule: True
        shell:
            "cp {input:q} {output:q} 2> {log:q}"


    rule reference_evidence:
        """Copy the measurements of the fresh weights (model_evidence) beside the committed ones."""
        input:
            f"{RUNS}/{EVIDENCE_FILE}",
        output:
            f"{REFERENCE}/{EVIDENCE_FILE}",
        log:
            f"{LOGS}/reference/{EVIDENCE_FILE}.log",
        localrule: True
        shell:
            "cp {input:q} {output:q} 2> {log:q}"


rule profile_record:
    """The profile's resolved config, beside its fresh runs (see PROFILE_RECORD)."""
    output:
        PROFILE_RECORD,
    log:
        f"{LOGS}/profile_record.log",
    params:
        config=profile_json(),
    shell:
        "printf '%s\\n' {params.config:q} > {output:q} 2> {log:q}"
