# Helpers of the workflow: config validation, the job list, and the input/params functions
# of the rules. Path conventions (record layout, file-safe method names) come from
# pcdeq/report/paths.py, the project's one paths module, and every artifact (its name, files,
# notebook, the runs it reads) from the registry pcdeq/report/artifacts.py, so the notebooks
# and the workflow can never disagree on them.

import glob
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# Import the project's own package from this checkout, installed or not.
sys.path.insert(0, str(Path(workflow.basedir)))

from pcdeq.hparams import (ConfigError, dataset_info, hyperparameters, method_pattern,  # noqa: E402
                           parse_method)
from pcdeq.report import (ARTIFACTS, AUG_SUFFIX, CLAIMS_TABLE, EVIDENCE_FILE, LOGS_ROOT,  # noqa: E402
                          REFERENCE_ROOT, RENDER_RULES, RUNS_ROOT, Artifact, RenderRule, arch_key, method_from_safe,
                          record_path, safe_method)
from pcdeq.report.artifacts import (EVIDENCE_CODE, REPORTED_SUFFIX, artifact_paths,  # noqa: E402
                                    code_files)

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
        for key in ("method_seeds", "method_max_iter"):
            for method in exp.get(key, {}):
                if method not in exp["methods"]:
                    raise WorkflowError(
                        f"config key {where}.{key}: {method!r} is not one of {where}.methods; "
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
REFERENCE: str = f"{REFERENCE_ROOT}/{PROFILE}"  # committed reference copy (`reference` target)
# runs_from: committed renders the artifacts from the records committed in REFERENCE, as they
# are (a long profile's finished runs), and trains nothing: no rule writes into REFERENCE then.
COMMITTED: bool = config.get("runs_from", "fresh") == "committed"
# The run records the artifacts read: this profile's fresh runs (git-ignored), or the committed ones.
RUNS: str = REFERENCE if COMMITTED else f"{RUNS_ROOT}/{PROFILE}"
LOGS: str = f"{LOGS_ROOT}/{PROFILE}"
if COMMITTED and not any(Path(REFERENCE).glob("*/*/seed*.json")):
    raise WorkflowError(
        f"runs_from=committed: no committed run records in {REFERENCE}/ for the {PROFILE} "
        f"profile; drop `--config runs_from=committed` to train them (fresh runs), or commit "
        f"finished runs there first (workflow/scripts/stash_runs.sh save {PROFILE})")
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
PROFILE_RECORD: str = (f"{LOGS}/committed/profile.json" if COMMITTED  # never into results/
                       else f"{RUNS}/profile.json")

# `snakemake --report` reads what `all` made; without finished runs there is nothing to show.
if any(a == "--report" or a.startswith("--report=") for a in sys.argv) and not Path(
        PROFILE_RECORD).exists():
    raise WorkflowError(
        f"no finished runs of the {config['profile']} profile in {RUNS}/: run "
        f"`snakemake --cores 1 all` (with the same --configfile) first, then --report.")
# File-safe method names of every family (pcdeq.hparams, the one place that names them),
# as the training rules' wildcard constraint: "*" is spelled "-aug" in paths.
METHOD_WILDCARD: str = method_pattern()[1:-1].replace(r"\*?", f"({AUG_SUFFIX})?")
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
    if COMMITTED:  # only the runs finished and committed so far
        out = [j for j in out if record_path(RUNS, *j).is_file()]
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
    out = [str(record_path(root, d, m, s).with_suffix(".pt")) for d, m, s in jobs()
           if m in want and s == 0 and not dataset_info(d).synthetic]
    return [w for w in out if Path(w).is_file()] if COMMITTED else out


def records(root: str, artifact: str | None = None, archs: tuple[str, ...] | None = None) -> list[str]:
    """Run-record paths under `root` of every job, or of those an artifact reads, or of the
    jobs of some architectures ("L", "SC", "MC", "MC*", "MS")."""
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


# --------------------------------------------------------- functions used by the rules
def train_method(wildcards) -> str:
    """The real method name (with "*") of a training job's file-safe wildcard."""
    return method_from_safe(wildcards.method)


def train_data(wildcards) -> list[str]:
    """The `dataset` job's output a training job waits for (none for shipped / synthetic data)."""
    return [f"{LOGS}/data/{wildcards.dataset}.json"] if wildcards.dataset in DOWNLOADED_DATASETS else []


def train_flags(wildcards) -> str:
    """--epochs/--train-limit/--test-limit of the job's (family, architecture) size entry, and
    --max-iter where the experiment's `method_max_iter` sets one for the method."""
    _, exp = _experiment(wildcards.dataset, wildcards.method)
    method = method_from_safe(wildcards.method)
    size = exp["sizes"][arch_key(method)]
    flags = {"epochs": "--epochs", "train_limit": "--train-limit", "test_limit": "--test-limit"}
    out = [f"{flag} {size[key]}" for key, flag in flags.items() if size[key] is not None]
    max_iter = exp.get("method_max_iter", {}).get(method)
    return " ".join(out + ([f"--max-iter {max_iter}"] if max_iter is not None else []))


def train_runtime(wildcards) -> int:
    """Expected minutes of a training job (the `runtime` resource)."""
    return _size(wildcards)["runtime"]


def profile_json() -> str:
    """The whole config as canonical JSON (the content of PROFILE_RECORD)."""
    return json.dumps(config, sort_keys=True)


def one_of(names: list[str]) -> str:
    """A wildcard constraint matching exactly one of `names`."""
    return "|".join(names)


# ------------------------------------------------------------------------ the artifacts
# Every table and figure is an entry of pcdeq/report/artifacts.py; the rules that render them
# (workflow/rules/artifacts.smk) and the named targets (targets.smk) are generated from it.
Job = tuple[Artifact, ...]  # the artifacts one rendering job writes


def folder(a: Artifact) -> str:
    """The profile's folder of an artifact's kind (figures_dir, tables_dir)."""
    return FIGURES if a.kind == "figure" else TABLES


def in_profile(a: Artifact) -> bool:
    """Whether the profile makes an artifact (`all`): the theory's unless the profile sets
    `theory: false`; the claims and Figure 15 always; any other if it reads runs the profile
    trains (Tables 5-7, which read the config: if the profile trains their family)."""
    if a.synthetic:
        return config.get("theory", True)
    if a.weights:
        return True
    if a.needs:
        return bool(jobs(a.name))
    return a.family in EXPERIMENTS


def artifact_files() -> list[str]:
    """Every file of every artifact the profile makes."""
    return [str(p) for a in ARTIFACTS.values() if in_profile(a) for p in a.paths(folder(a))]


def artifact_runs(a: Artifact) -> list[str]:
    """The fresh run records an artifact reads, and those of the models whose weights it
    studies: the training jobs its named target runs."""
    studied = [w[: -len(".pt")] + ".json" for w in weights(RUNS)] if a.weights else []
    return list(dict.fromkeys(records(RUNS, a.name) + studied))


def render_job(rule: RenderRule, wildcards) -> Job:
    """The artifacts a job of a rendering rule writes: the one its `{name}` names, or all."""
    return (ARTIFACTS[wildcards.name],) if rule.each else rule.artifacts


def of_job(rule: RenderRule, fn: Callable[[Job], Any]) -> Callable:
    """`fn` of the job, as an input / params / resources function of the rule's jobs."""
    return lambda wildcards: fn(render_job(rule, wildcards))


def job_records(job: Job) -> list[str]:
    """Fresh run records the job's artifacts are rendered from (only the training jobs they need)."""
    return list(dict.fromkeys(r for a in job for r in records(RUNS, a.name)))


def job_weights(job: Job) -> list[str]:
    """The weights the job studies (Figure 15, the claims), else none."""
    return weights(RUNS) if any(a.weights for a in job) else []


def job_evidence(job: Job) -> list[str]:
    """The measurements of trained models the job reads (rule model_evidence): this profile's
    for Figure 15, and for the claims also those committed for the other profiles."""
    if not any(a.weights for a in job):
        return []
    out = [f"{RUNS}/{EVIDENCE_FILE}"]
    others = claims_sources()[1:] if CLAIMS_TABLE in job else []
    from pcdeq.claims import Source, remeasure_hint
    for other in others:  # the other profiles' committed measurements: no rule here makes them
        d, src = other["dir"], Source(other["profile"], Path(other["dir"]))
        if Path(d, EVIDENCE_FILE).is_file():
            out.append(f"{d}/{EVIDENCE_FILE}")
        elif src.weights():  # the records' layout of weights, as load_evidence sees them
            # (as a missing input Snakemake would keep the committed claims table, silently)
            raise WorkflowError(f"{d}/{EVIDENCE_FILE} is missing beside the weights in {d}/, and "
                                f"the claims read it; " + remeasure_hint(src))
        # no weights there: nothing to measure, the claims say "not testable here"
    return out


def job_code(job: Job) -> list[str]:
    """The code the job's artifacts are rendered by: a change there redoes them, not the runs."""
    return job[0].notebook.code_files(workflow.basedir)


CLAIMS_PROFILES: tuple[str, ...] = ("quick", "fashion")  # the profiles with committed evidence


def claims_sources() -> list[dict]:
    """The claims' evidence: this profile's fresh runs (records, and the weights of the
    `reference_weights` methods), then the committed results of the other profiles."""
    return [{"profile": PROFILE, "dir": RUNS, "weights": weights(RUNS)}] + [
        {"profile": p, "dir": f"{REFERENCE_ROOT}/{p}"} for p in CLAIMS_PROFILES if p != PROFILE]


# The value of every notebook parameter the workflow passes (Notebook.params), per job.
NOTEBOOK_PARAMS: dict[str, Callable[[Job], Any]] = {
    "profile": lambda job: PROFILE,
    "description": lambda job: config["description"],
    "experiments": lambda job: EXPERIMENTS,
    "data_root": lambda job: config["data_root"],
    "results_dir": lambda job: RUNS,
    "records": job_records,
    "which": lambda job: job[0].name,
    "out_dir": lambda job: FIGURES if any(a.kind == "figure" for a in job) else TABLES,
    "tables_dir": lambda job: TABLES,
    "weights_dir": lambda job: RUNS,
    "weights": job_weights,
    "sources": lambda job: claims_sources(),
}


def notebook_params(job: Job) -> str:
    """Papermill parameters (a JSON mapping for `-y`) of the job's notebook."""
    return json.dumps({p: NOTEBOOK_PARAMS[p](job) for p in job[0].notebook.params},
                      sort_keys=True)


def render_outputs(rule: RenderRule) -> list:
    """The files a rendering rule writes: the `{name}` patterns of its kind (one job per
    artifact) or every file of its artifacts; the file of each artifact that `snakemake
    --report` shows (.md, .png) is flagged for it."""
    if rule.each:
        a = rule.artifacts[0]  # all of one kind
        return [reported(str(p), None) if p.suffix == REPORTED_SUFFIX[a.kind] else str(p)
                for p in artifact_paths(a.kind, "{name}", folder(a))]
    return [reported(str(p), a) if p.name == a.name + REPORTED_SUFFIX[a.kind] else str(p)
            for a in rule.artifacts for p in a.paths(folder(a))]


# ----------------------------------------------------------------- the HTML report
REPORT_CAPTION: str = "../report/artifact.rst"  # relative to the rule files (workflow/rules/)


def reported(path: str, artifact: Artifact | None):
    """`path` as an entry of `snakemake --report`, under its artifact's section (the paper's),
    labelled with its title and provenance. `artifact` None: the one the job's `{name}` names."""

    def pick(wildcards) -> Artifact:
        return artifact or ARTIFACTS[wildcards.name]

    def labels(wildcards, input) -> dict[str, str]:
        """Evaluated only by --report, from the job's records."""
        from pcdeq.report import caption, load_runs
        from pcdeq.report.records import artifact_title

        a = pick(wildcards)
        if a.provenance:
            return {"artifact": a.title, "provenance": a.provenance}
        runs = load_runs(list(input.records)) if list(input.records) else []
        return {"artifact": artifact_title(a.name, runs),
                "provenance": caption(PROFILE, runs) if runs else config["description"]}

    return report(path, caption=REPORT_CAPTION, category=lambda wildcards: pick(wildcards).section,
                  labels=labels)
