# Helpers of the workflow: config validation, the job list, and the input/params functions
# of the rules. Path conventions (record layout, file-safe method names, artifact names)
# come from pcdeq/report/paths.py, the project's one paths module, so the notebooks and the
# workflow can never disagree on them.

import json
import os
import shutil
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# Import the project's own package from this checkout, installed or not.
sys.path.insert(0, str(Path(workflow.basedir)))

from pcdeq.hparams import (ConfigError, dataset_info, hyperparameters, method_pattern,  # noqa: E402
                           parse_method)
from pcdeq.report import (ARTIFACTS, AUG_SUFFIX, HPARAM_TABLES, LOGS_ROOT,  # noqa: E402
                          REFERENCE_ROOT, RUNS_ROOT, arch_key, method_from_safe, record_path,
                          safe_method)

# The interpreter running Snakemake also runs the jobs (`python` on PATH may be another one,
# e.g. when snakemake is called as .venv/bin/snakemake without activating the venv). Used in
# shell commands directly, not via params: an interpreter's path is not provenance of a
# result, and as a param it would make every output look outdated after a venv move.
PY = sys.executable


def check_config(cfg: dict) -> None:
    """What the JSON schema cannot check, before any job starts; errors name the config key.

    Raises:
        WorkflowError: a method refused by pcdeq.hparams.parse_method (e.g. pcDEQ-2 with
            ReLU6), a method the paper has no model for on that family, a dataset of
            another family, or a method whose architecture has no entry under `sizes`.
    """
    trained = set()
    for family, exp in cfg["experiments"].items():
        if exp is None:  # the profile leaves this family out
            continue
        where = f"experiments.{family}"
        info = dataset_info(exp["dataset"])
        if info.family != family:
            raise WorkflowError(
                f"config key {where}.dataset: {exp['dataset']!r} is a {info.family} dataset, "
                f"not a {family} one")
        for i, method in enumerate(exp["methods"]):
            try:
                parse_method(method)
                hyperparameters(exp["dataset"], method)
            except ConfigError as e:
                raise WorkflowError(f"config key {where}.methods[{i}]: {e}") from None
            if arch_key(method) not in exp["sizes"]:
                raise WorkflowError(
                    f"config key {where}.sizes: no entry {arch_key(method)!r} for "
                    f"{where}.methods[{i}] = {method!r}")
            trained.add(method)
        for method in exp.get("method_seeds", {}):
            if method not in exp["methods"]:
                raise WorkflowError(
                    f"config key {where}.method_seeds: {method!r} is not one of {where}.methods; "
                    f"add it there or remove its entry")
    for i, method in enumerate(cfg.get("reference_weights", [])):
        if method not in trained:
            raise WorkflowError(
                f"config key reference_weights[{i}]: {method!r} is not trained by this profile; "
                f"name one of the methods under experiments.<family>.methods")


validate(config, "../config/schema.yaml")
check_config(config)

# profiles/slurm sets executor=slurm. Inside a SLURM job (SLURM_JOB_ID set) Snakemake runs the
# job itself, so the check is for the submitting side only.
if (config.get("executor") == "slurm" and "SLURM_JOB_ID" not in os.environ
        and shutil.which("sbatch") is None):
    raise WorkflowError(
        "profiles/slurm submits every job with sbatch, which is not on PATH here: run it on a "
        "SLURM login node (or bring up a local test cluster: profiles/slurm/local-cluster.sh), "
        "or drop --profile profiles/slurm to run on this machine (--cores N). Nothing was "
        "submitted.")

# The families this profile trains (a null entry leaves one out, e.g. in the fashion profile).
EXPERIMENTS: dict[str, dict] = {f: e for f, e in config["experiments"].items() if e is not None}

PROFILE: str = config["profile"]
RUNS: str = f"{RUNS_ROOT}/{PROFILE}"  # fresh run records of this profile (git-ignored)
REFERENCE: str = f"{REFERENCE_ROOT}/{PROFILE}"  # committed reference copy (`reference` target)
LOGS: str = f"{LOGS_ROOT}/{PROFILE}"
FIGURES: str = config["figures_dir"]
TABLES: str = config["tables_dir"]
GPU: int = 0 if config["device"] == "cpu" else 1
DATASETS: list[str] = sorted({exp["dataset"] for exp in EXPERIMENTS.values()})
# The profile's datasets that are not shipped (mnist5k) or generated (synthetic stand-ins).
DOWNLOADED_DATASETS: list[str] = [d for d in DATASETS if d in ("mnist", "fashion_mnist", "svhn",
                                                                 "cifar10")]
# The resolved config, written next to the fresh runs: provenance, and an input of every
# artifact that a fresh clone lacks, so that `all` regenerates the committed artifacts
# whatever the file times of the checkout (Snakemake skips missing intermediates of
# outputs it deems up to date).
PROFILE_RECORD: str = f"{RUNS}/profile.json"

# `snakemake --report` reads what `all` made; without finished runs there is nothing to show.
if any(a == "--report" or a.startswith("--report=") for a in sys.argv) and not Path(
        PROFILE_RECORD).exists():
    raise WorkflowError(
        f"no finished runs of the {config['profile']} profile in {RUNS}/: run "
        f"`snakemake --cores 1 all` (with the same --configfile) first, then --report.")
# File-safe method names of every family (pcdeq.hparams, the one place that names them),
# as the training rules' wildcard constraint: "*" is spelled "-aug" in paths.
METHOD_WILDCARD: str = method_pattern()[1:-1].replace(r"\*?", f"({AUG_SUFFIX})?")
# The code every artifact is rendered by: a change there redoes the artifacts, not the runs.
REPORT_CODE: list[str] = sorted(f"pcdeq/report/{p.name}" for p in
                                Path(workflow.basedir, "pcdeq", "report").glob("*.py")) + [
                                    "pcdeq/paper_results.py"]
# Torch threads of a training job: as configured, not Snakemake's `threads` (which --cores 1
# cuts to 1). Used in the shell command directly, like PY, so it is no rerun trigger.
TORCH_THREADS: int = config["threads"]


def jobs(artifact: str | None = None) -> list[tuple[str, str, int]]:
    """(dataset, method, seed) of every training job, or of those an artifact reads."""
    out = []
    for family, exp in EXPERIMENTS.items():
        for method in exp["methods"]:
            if artifact is None or ARTIFACTS[artifact].wants(family, method):
                out += [(exp["dataset"], method, s) for s in range(seeds_of(exp, method))]
    return out


def seeds_of(exp: dict, method: str) -> int:
    """Runs per method: its `method_seeds` entry, else the architecture's `seeds` if its size
    entry sets one, else the experiment's."""
    return (exp.get("method_seeds", {}).get(method) or exp["sizes"][arch_key(method)].get("seeds")
            or exp["seeds"])


def weights(root: str) -> list[str]:
    """Seed-0 weight files of the profile's `reference_weights` methods under `root`."""
    want = set(config.get("reference_weights", []))
    # Models trained on synthetic stand-ins are no evidence for the claims: not committed.
    return [str(record_path(root, d, m, s).with_suffix(".pt")) for d, m, s in jobs()
            if m in want and s == 0 and not dataset_info(d).synthetic]


def records(root: str, artifact: str | None = None, archs: tuple[str, ...] | None = None) -> list[str]:
    """Run-record paths under `root` of every job, or of those an artifact reads, or of the
    jobs of some architectures ("L", "SC", "MC", "MC*")."""
    return [str(record_path(root, d, m, s)) for d, m, s in jobs(artifact)
            if archs is None or arch_key(m) in archs]


def _experiment(dataset: str, safe: str) -> tuple[str, dict]:
    """(family, config entry) of a training job's wildcards."""
    method = method_from_safe(safe)
    for family, exp in EXPERIMENTS.items():
        if exp["dataset"] == dataset and method in exp["methods"]:
            return family, exp
    raise WorkflowError(f"no experiment in the config trains {method} on {dataset}")


def _size(wildcards) -> dict:
    family, exp = _experiment(wildcards.dataset, wildcards.method)
    return exp["sizes"][arch_key(method_from_safe(wildcards.method))]


# ----------------------------------------------------------------- the HTML report
REPORT_CAPTION: str = "../report/artifact.rst"  # relative to the rule files (workflow/rules/)
# Categories of `snakemake --report`: the paper's sections (by artifact name prefix).
REPORT_SECTIONS: dict[str, str] = {
    **{k: "1. Experiments (Sec. 5: Tables 1-3, Figures 2-4; App. D: Figures 8-10)"
       for k in ("table1", "table2", "table3", "fig2", "fig3", "fig4", "fig8", "fig9", "fig10")},
    **{k: "2. Data and hyperparameters (App. C: Tables 4-7)"
       for k in ("table4", "table5", "table6", "table7")},
    **{k: "3. Beyond the paper: the other stable DEQs (Table 8, Figures 11-12)"
       for k in ("table8", "fig11", "fig12")},
    **{k: "4. Theory on synthetic problems (Figures 13-14, Table 9)"
       for k in ("fig13", "fig14", "table9")},
    **{k: "5. The paper's claims, checked" for k in ("claims", "fig15")},
}


def report_category(wildcards) -> str:
    return REPORT_SECTIONS[wildcards.name.split("_")[0]]


def report_labels(wildcards, input) -> dict[str, str]:
    """Labels of an artifact in the report (evaluated only by --report, from its records)."""
    from pcdeq.report import caption, load_runs
    from pcdeq.report.records import artifact_title

    runs = load_runs(list(input.records)) if list(input.records) else []
    return {"artifact": artifact_title(wildcards.name, runs),
            "provenance": caption(PROFILE, runs) if runs else config["description"]}


# --------------------------------------------------------- functions used by the rules
def train_method(wildcards) -> str:
    """The real method name (with "*") of a training job's file-safe wildcard."""
    return method_from_safe(wildcards.method)


def train_data(wildcards) -> list[str]:
    """The `dataset` job's output a training job waits for (none for shipped / synthetic data)."""
    return [f"{LOGS}/data/{wildcards.dataset}.json"] if wildcards.dataset in DOWNLOADED_DATASETS else []


def train_size_args(wildcards) -> str:
    """--epochs/--train-limit/--test-limit of the job's (family, architecture) size entry."""
    size = _size(wildcards)
    flags = {"epochs": "--epochs", "train_limit": "--train-limit", "test_limit": "--test-limit"}
    return " ".join(f"{flag} {size[key]}" for key, flag in flags.items() if size[key] is not None)


def train_runtime(wildcards) -> int:
    """Expected minutes of a training job (the `runtime` resource)."""
    return _size(wildcards)["runtime"]


def artifact_records(wildcards) -> list[str]:
    """Fresh run records an artifact is rendered from (only the training jobs it needs)."""
    return records(RUNS, wildcards.name)


def profile_json() -> str:
    """The whole config as canonical JSON (the content of PROFILE_RECORD)."""
    return json.dumps(config, sort_keys=True)


def artifact_notebook(wildcards) -> str:
    return ARTIFACTS[wildcards.name].notebook


def notebook_params(wildcards) -> str:
    """Papermill parameters (a YAML/JSON mapping for `-y`) of an artifact's notebook."""
    kind = ARTIFACTS[wildcards.name].kind
    params = {
        "profile": PROFILE,
        "results_dir": RUNS,
        "records": records(RUNS, wildcards.name),
        "which": wildcards.name,
        "out_dir": TABLES if kind == "table" else FIGURES,
    }
    nb = Path(ARTIFACTS[wildcards.name].notebook).name
    if nb == "dataset_table.ipynb":
        params["data_root"] = config["data_root"]
    if nb == "hparam_tables.ipynb":
        params["experiments"] = EXPERIMENTS
        params["description"] = config["description"]
        del params["records"], params["results_dir"]
    return json.dumps(params, sort_keys=True)


def artifact_names(kind: str) -> list[str]:
    return [a.name for a in ARTIFACTS.values() if a.kind == kind]


def in_profile(name: str) -> bool:
    """Whether the profile makes an artifact: it reads runs the profile trains (Tables 5-7,
    which read the config: the profile trains their family)."""
    if ARTIFACTS[name].needs:
        return bool(jobs(name))
    return any(HPARAM_TABLES.get(f) == name for f in EXPERIMENTS)


def artifact_files() -> list[str]:
    """Every table (.md, .tex) and figure (.pdf, .png) of the profile."""
    return [str(p) for a in ARTIFACTS.values() if in_profile(a.name)
            for p in a.paths(TABLES if a.kind == "table" else FIGURES)]


def one_of(names: list[str]) -> str:
    """A wildcard constraint matching exactly one of `names`."""
    return "|".join(names)
