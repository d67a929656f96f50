# Artifacts: Papermill executes a parameterized notebook; the notebook writes the artifact
# files itself and its executed copy is kept as the rule's log. Plotting is split from
# training: changing a figure never retrains anything.
#
# The rules are generated from the artifact registry (pcdeq/report/artifacts.py, RENDER_RULES):
# `table` and `figure` run one job per artifact (the notebooks that take `which`: Tables 1-8,
# Figures 2-4, 8-12); `theory_geometry` (Figure 13 + Table 9), `theory_dynamics` (Figure 14),
# `claims_table` (the claims) and `beyond_contraction` (Figure 15) one job for their notebook;
# these two read the measurements of the trained models that `model_evidence` makes.
# Every artifact also reads the profile record, which a fresh clone lacks: `all` there
# regenerates the committed files too, the theory's (synthetic problems, no runs) included.

rule model_evidence:
    """Measure the profile's trained models once (`python -m pcdeq evidence`): the fixed-point
    checks of claims C1, C2, C7 and the scaled study of Figure 15 (minutes, float64), as data
    beside the weights; the claims and Figure 15 notebooks only read it. With
    runs_from=committed it is remade from the committed weights into results/<profile>/ (a
    measurement of them, like the artifacts; the records and weights stay untouched)."""
    input:
        weights=weights(RUNS),
        profile=PROFILE_RECORD,
        code=code_files(EVIDENCE_CODE, workflow.basedir),
    output:
        f"{RUNS}/{EVIDENCE_FILE}",
    log:
        f"{LOGS}/model_evidence.log",
    params:
        data_root=config["data_root"],
    resources:
        gpu=0,
        mem_mb=4000,
        runtime=30,
    shell:
        "{PY:q} -m pcdeq evidence --profile {PROFILE} --dir {RUNS:q} --weights {input.weights:q}"
        " --data-root {params.data_root:q} --out {output:q} > {log:q} 2>&1"
        " || {{ cat {log:q} >&2; exit 1; }}"


PAPERMILL: str = ("{PY:q} -m papermill --kernel python3 --cwd . --no-progress-bar"
                  " {input.notebook:q} {log.notebook:q} -y {params.nb:q} 2> {log.stderr:q}")

for _rule in RENDER_RULES.values():
    _log = f"{LOGS}/notebooks/{'{name}' if _rule.each else _rule.artifacts[0].name}"

    rule:
        name:
            _rule.name
        input:
            notebook=of_job(_rule, lambda job: job[0].notebook.path),
            records=of_job(_rule, job_records),
            weights=of_job(_rule, job_weights),
            evidence=of_job(_rule, job_evidence),
            profile=PROFILE_RECORD,
            code=of_job(_rule, job_code),
        output:
            *render_outputs(_rule),
        log:
            notebook=f"{_log}.ipynb",
            stderr=f"{_log}.log",
        params:
            nb=of_job(_rule, notebook_params),
        resources:
            gpu=0,
            mem_mb=of_job(_rule, lambda job: job[0].notebook.mem_mb),
            runtime=of_job(_rule, lambda job: job[0].notebook.runtime),
        wildcard_constraints:
            **({"name": one_of([a.name for a in _rule.artifacts])} if _rule.each else {}),
        shell:
            PAPERMILL

    workflow.get_rule(_rule.name).docstring = _rule.doc
