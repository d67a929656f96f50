# Artifacts: Papermill executes a parameterized notebook per table / figure; the notebook
# writes the artifact files itself and its executed copy is kept as the rule's log.
# Plotting is split from training: changing a figure never retrains anything.


rule table:
    """Tables 1-8 (Markdown + LaTeX): accuracy_tables / dataset_table / hparam_tables /
    stable_deqs."""
    input:
        notebook=artifact_notebook,
        records=artifact_records,
        profile=PROFILE_RECORD,
        code=REPORT_CODE,
    output:
        md=report(f"{TABLES}/{{name}}.md", caption=REPORT_CAPTION, category=report_category,
                  labels=report_labels),
        tex=f"{TABLES}/{{name}}.tex",
    log:
        notebook=f"{LOGS}/notebooks/{{name}}.ipynb",
        stderr=f"{LOGS}/notebooks/{{name}}.log",
    params:
        nb=notebook_params,
    resources:
        gpu=0,
        mem_mb=2000,
        runtime=10,
    wildcard_constraints:
        name=one_of(artifact_names("table")),
    shell:
        "{PY:q} -m papermill --kernel python3 --cwd . --no-progress-bar"
        " {input.notebook:q} {log.notebook:q} -y {params.nb:q} 2> {log.stderr:q}"


rule figure:
    """Figures 2-4, 8-10 (notebooks/figures.ipynb) and 11-12 (notebooks/stable_deqs.ipynb), PDF +
    PNG, byte-stable."""
    input:
        notebook=artifact_notebook,
        records=artifact_records,
        profile=PROFILE_RECORD,
        code=REPORT_CODE,
    output:
        pdf=f"{FIGURES}/{{name}}.pdf",
        png=report(f"{FIGURES}/{{name}}.png", caption=REPORT_CAPTION,
                   category=report_category, labels=report_labels),
    log:
        notebook=f"{LOGS}/notebooks/{{name}}.ipynb",
        stderr=f"{LOGS}/notebooks/{{name}}.log",
    params:
        nb=notebook_params,
    resources:
        gpu=0,
        mem_mb=2000,
        runtime=10,
    wildcard_constraints:
        name=one_of(artifact_names("figure")),
    shell:
        "{PY:q} -m papermill --kernel python3 --cwd . --no-progress-bar"
        " {input.notebook:q} {log.notebook:q} -y {params.nb:q} 2> {log.stderr:q}"
