"""Run records -> the paper's tables and figures (used by the notebooks and the workflow).

The notebooks in ``notebooks/`` stay thin: they load run records written by
``python -m pcdeq train`` (format ``pcdeq-run/1``) and call this package to aggregate them over
seeds, render the tables as Markdown + LaTeX and draw the figures as PDF + PNG. By concern:

* :mod:`.paths`: the record layout and file-safe method names (the workflow's *paths module*);
* :mod:`.artifacts`: the artifact registry: every table and figure (theory and claims
  included), its notebook, files, report section and the runs it reads; the workflow's
  rendering rules and named targets follow from it;
* :mod:`.records`: the record schema and its validation, aggregation, provenance captions;
* :mod:`.tables`: Tables 1-8;
* :mod:`.figures`: Figures 2-4 and 8-12.

Honesty rules kept here, so that no notebook can forget them:

* every table and figure carries a caption stating the profile and the data that produced
  it (real or synthetic stand-in, seeds x epochs, how many images were used);
* the paper's numbers and the baselines it quotes come from :mod:`pcdeq.paper_results`
  and are always labelled as quotations;
* a malformed or unfinished record raises :class:`RecordError` naming the file.

Heavy imports (numpy, matplotlib) happen inside the functions that need them, because
Snakemake imports this package while building the DAG.
"""

from .artifacts import (ACCURACY_TABLES, ARTIFACTS, BEYOND_FIGURE, CLAIMS_TABLE, CONVERGENCE_TABLE,
                        DYNAMICS_FIGURE, GEOMETRY_FIGURE, HPARAM_TABLES, NOTEBOOKS, RENDER_RULES,
                        SECTIONS, SUFFIXES, Artifact, Notebook, RenderRule, artifact_paths,
                        artifacts_of, select)
from .figures import COLORS, METRICS, figure_summary, make_figure, save_figure
from .paths import (AUG_SUFFIX, EVIDENCE_FILE, FAMILIES, LOGS_ROOT, RECORD_FORMAT, REFERENCE_ROOT, RUNS_ROOT,
                    arch_key, method_from_safe, record_path, safe_method)
from .records import (Curve, RecordError, Run, Summary, caption, curve, data_label, find_records,
                      load_run, load_runs, mean_std, select_runs, size_label, summarize)
from .tables import (Table, accuracy_table, dataset_table, hparam_table, latex_escape, make_table,
                     write_table)
