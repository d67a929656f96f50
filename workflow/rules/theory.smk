# Theory notebooks: synthetic illustrations of the theory (random maps and Gaussian data, no
# training runs, no run records), so they depend only on their notebook and the code, and are
# the same in every profile. Like every artifact they also read the profile record, which a
# fresh clone lacks: `all` there regenerates the committed files too. Papermill executes each notebook once; it writes the artifact
# files itself and its executed copy is kept as the rule's log.
#
#   notebooks/pcdeq_theory.ipynb        -> Figure 13 + Table 9 (pcDEQ fixed-point geometry)
#   notebooks/linear_deq_dynamics.ipynb -> Figure 14 (gradient descent on linear DEQs)

import json
from pathlib import Path

from pcdeq.report import artifact_paths

THEORY_GEOMETRY_FIGURE: str = "fig13_fixed_point_geometry"
THEORY_GEOMETRY_TABLE: str = "table9_convergence"
THEORY_DYNAMICS_FIGURE: str = "fig14_linear_deq_dynamics"
THEORY_CODE: list[str] = [*sorted(str(p) for p in Path("pcdeq/theory").glob("*.py")),
                          "pcdeq/solver.py", "pcdeq/layers.py",
                          "pcdeq/hparams.py", *REPORT_CODE]

# Every file the theory notebooks write (an input of `rule all`).
THEORY_FILES: list[str] = [
    str(p)
    for p in (
        artifact_paths("figure", THEORY_GEOMETRY_FIGURE, FIGURES)
        + artifact_paths("table", THEORY_GEOMETRY_TABLE, TABLES)
        + artifact_paths("figure", THEORY_DYNAMICS_FIGURE, FIGURES)
    )
]


rule theory_geometry:
    """Figure 13 and Table 9 (notebooks/pcdeq_theory.ipynb): fixed-point iteration on 2-D and
    50-D pcDEQ maps with ||W||_2 = 3 and on the same maps with one hypothesis removed; Banach's
    bound against the measured error."""
    input:
        notebook="notebooks/pcdeq_theory.ipynb",
        code=THEORY_CODE,
        profile=PROFILE_RECORD,
    output:
        pdf=f"{FIGURES}/{THEORY_GEOMETRY_FIGURE}.pdf",
        png=report(f"{FIGURES}/{THEORY_GEOMETRY_FIGURE}.png", caption=REPORT_CAPTION,
                   category=REPORT_SECTIONS["fig13"],
                   labels={"artifact": "Figure 13: fixed-point geometry (synthetic maps)",
                           "provenance": "synthetic: random W >= 0 and x, no training runs"}),
        md=report(f"{TABLES}/{THEORY_GEOMETRY_TABLE}.md", caption=REPORT_CAPTION,
                  category=REPORT_SECTIONS["table9"],
                  labels={"artifact": "Table 9: convergence of the fixed-point iteration",
                          "provenance": "synthetic: random W >= 0 and x, no training runs"}),
        tex=f"{TABLES}/{THEORY_GEOMETRY_TABLE}.tex",
    log:
        notebook=f"{LOGS}/notebooks/{THEORY_GEOMETRY_FIGURE}.ipynb",
        stderr=f"{LOGS}/notebooks/{THEORY_GEOMETRY_FIGURE}.log",
    params:
        nb=json.dumps({"profile": PROFILE, "out_dir": FIGURES, "tables_dir": TABLES},
                      sort_keys=True),
    resources:
        gpu=0,
        mem_mb=2000,
        runtime=5,
    shell:
        "{PY:q} -m papermill --kernel python3 --cwd . --no-progress-bar"
        " {input.notebook:q} {log.notebook:q} -y {params.nb:q} 2> {log.stderr:q}"


rule theory_dynamics:
    """Figure 14 (notebooks/linear_deq_dynamics.ipynb): gradient descent on linear and
    single-index DEQs: linear convergence, the conserved quantities' drift beside its exact
    prediction, sigma_min(I - W)."""
    input:
        notebook="notebooks/linear_deq_dynamics.ipynb",
        code=THEORY_CODE,
        profile=PROFILE_RECORD,
    output:
        pdf=f"{FIGURES}/{THEORY_DYNAMICS_FIGURE}.pdf",
        png=report(f"{FIGURES}/{THEORY_DYNAMICS_FIGURE}.png", caption=REPORT_CAPTION,
                   category=REPORT_SECTIONS["fig14"],
                   labels={"artifact": "Figure 14: gradient descent on linear DEQs",
                           "provenance": "synthetic: Gaussian data, no training runs"}),
    log:
        notebook=f"{LOGS}/notebooks/{THEORY_DYNAMICS_FIGURE}.ipynb",
        stderr=f"{LOGS}/notebooks/{THEORY_DYNAMICS_FIGURE}.log",
    params:
        nb=json.dumps({"profile": PROFILE, "out_dir": FIGURES}, sort_keys=True),
    resources:
        gpu=0,
        mem_mb=2000,
        runtime=5,
    shell:
        "{PY:q} -m papermill --kernel python3 --cwd . --no-progress-bar"
        " {input.notebook:q} {log.notebook:q} -y {params.nb:q} 2> {log.stderr:q}"
