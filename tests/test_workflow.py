"""The workflow's configuration checks, its job list, and the report built on real run records.

Snakemake is run as a subprocess (dry runs only: nothing is trained by Snakemake here); the
report is exercised on records written by a real, tiny `python -m pcdeq train` run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pcdeq import report
from pcdeq.report import EVIDENCE_FILE, REFERENCE_ROOT
from pcdeq.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake_dry_run_cmd(*args: str, force: str | None = "--forceall") -> list[str]:
    """`snakemake -n`, by default forcing every job so that finished runs don't hide any."""
    return [*SNAKEMAKE, "--dry-run", *([force] if force else []), "--nolock", "--cores", "1", *args]


def fresh_clone(dest: Path) -> Path:
    """The tracked files of the repository, as a fresh clone has them, with the committed
    artifacts made the newest files: the worst case of a checkout's file times."""
    ls = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True)
    if ls.returncode != 0:
        pytest.skip("not a git checkout: cannot tell the tracked files")
    for f in filter(None, ls.stdout.split("\0")):
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, dest / f)
    for artifact in [*(dest / "figures").glob("*.p*"), *(dest / "tables").glob("*.*")]:
        artifact.touch()
    return dest


def bad_config(tmp_path: Path, name: str, edit) -> Path:
    """The smoke profile with one edit, written to a temporary file."""
    cfg = load_config("smoke.yaml")
    edit(cfg)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def load_config(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


BAD_CONFIGS = {
    # an unknown key (a typo) is refused by the schema, which names it
    "unknown_key": (lambda c: c["experiments"]["mnist"]["sizes"]["L"].update(epoch=3),
                    "'epoch' was unexpected"),
    # a method that passes the name pattern but breaks Lemma 4.2 (pcDEQ-2 needs sigmoid):
    # refused by pcdeq.hparams.parse_method in workflow/common.smk, naming the key
    "bad_method": (lambda c: c["experiments"]["mnist"].update(
        methods=["pcDEQ-1-L-ReLU6", "pcDEQ-2-L-ReLU6"]), "experiments.mnist.methods[1]"),
    # a baseline the family does not define (monDEQ needs ReLU), refused naming the key
    "bad_baseline": (lambda c: c["experiments"]["mnist"].update(
        methods=["monDEQ-L", "monDEQ-L-Tanh"]), "experiments.mnist.methods[1]"),
    # an unknown family: refused listing the valid names, naming the key
    "unknown_method": (lambda c: c["experiments"]["mnist"].update(methods=["pcDEQ-3-MC-ReLU6"]),
                       "experiments.mnist.methods[0]: unknown method 'pcDEQ-3-MC-ReLU6'; valid:"),
    # weights to commit of a method the profile does not train: refused naming the key
    "reference_weights": (lambda c: c.update(reference_weights=["pcDEQ-1-L-ReLU6", "DEQ-L-ReLU"])
                          or c["experiments"]["mnist"].update(methods=["pcDEQ-1-L-ReLU6"]),
                          "config key reference_weights[1]: 'DEQ-L-ReLU' is not trained"),
    # a solver cap for a method the profile does not train (a typo): refused naming the key
    "max_iter_unknown_method": (lambda c: c["experiments"]["mnist"].update(
        method_max_iter={"DEQ-SC-Tanhh": 50}),
        "config key experiments.mnist.method_max_iter: 'DEQ-SC-Tanhh' is not one of"),
    # an L model on SVHN: the paper has none; refused naming the key
    "wrong_family": (lambda c: c["experiments"]["svhn"].update(methods=["pcDEQ-1-L-ReLU6"]),
                     "experiments.svhn.methods[0]"),
}


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Every Snakemake dry run of this file, started at once (each spends seconds importing)."""
    tmp = tmp_path_factory.mktemp("configs")
    clone = fresh_clone(tmp_path_factory.mktemp("clone"))
    # the same, but the committed measurements of the fashion weights lost
    no_evidence = fresh_clone(tmp_path_factory.mktemp("no_evidence"))
    (no_evidence / REFERENCE_ROOT / "fashion" / EVIDENCE_FILE).unlink()
    cmds = {
        "paper": (snakemake_dry_run_cmd("all", "--configfile", "config/paper.yaml",
                                        "--printshellcmds"), ROOT),
        "fashion": (snakemake_dry_run_cmd("all", "--configfile", "config/fashion.yaml",
                                          "--printshellcmds"), ROOT),
        **{part: (snakemake_dry_run_cmd(part, "--configfile", "config/fashion.yaml"), ROOT)
           for part in ("l_runs", "conv_runs", "ms_runs")},
        "fig4": (snakemake_dry_run_cmd("figures/fig4_sigma_max.pdf"), ROOT),
        # what the README's commands do in a fresh clone, whose artifacts are committed
        "clone_all": (snakemake_dry_run_cmd("all", force=None), clone),
        "clone_fig4": (snakemake_dry_run_cmd("figures/fig4_sigma_max.pdf", force=None), clone),
        "clone_fig4_force": (snakemake_dry_run_cmd("figures/fig4_sigma_max.pdf", force="--force"), clone),
        "clone_fig4_named": (snakemake_dry_run_cmd("fig4", force=None), clone),
        "clone_table8_named": (snakemake_dry_run_cmd("table8", force=None), clone),
        "clone_fig13_named": (snakemake_dry_run_cmd("fig13", force=None), clone),
        "clone_fig15_named": (snakemake_dry_run_cmd("fig15", force=None), clone),
        "clone_claims_named": (snakemake_dry_run_cmd("claims", force=None), clone),
        "target_rules": ([*SNAKEMAKE, "--list-target-rules", "--nolock"], ROOT),
        # the artifacts from the committed records, as they are: nothing trained
        "clone_fashion_committed_claims": (snakemake_dry_run_cmd(
            "claims", "--configfile", "config/fashion.yaml", "--config", "runs_from=committed",
            "--printshellcmds", force=None), clone),
        "clone_quick_committed_all": (snakemake_dry_run_cmd(
            "all", "--config", "runs_from=committed", force=None), clone),
        "clone_smoke_committed": (snakemake_dry_run_cmd(
            "all", "--configfile", "config/smoke.yaml", "--config", "runs_from=committed",
            force=None), clone),
        "no_fashion_evidence": (snakemake_dry_run_cmd("claims", force=None), no_evidence),
        "runs_from_typo": (snakemake_dry_run_cmd("all", "--config", "runs_from=commited"), ROOT),
    }
    for name, (edit, _) in BAD_CONFIGS.items():
        cmds[name] = (snakemake_dry_run_cmd("all", "--configfile", str(bad_config(tmp, name, edit))), ROOT)
    procs = {k: subprocess.Popen(c, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for k, (c, cwd) in cmds.items()}
    out = {}
    for k, p in procs.items():
        # all at once they took 130 s on 2 idle cores, 260 s beside two training jobs
        stdout, stderr = p.communicate(timeout=900)
        out[k] = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
    return out


def job_counts(out: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> number of jobs."""
    block = out.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


# ------------------------------------------------------------------- config validation
@pytest.mark.parametrize("name", BAD_CONFIGS)
def test_bad_config_fails_before_any_job_naming_the_key(dry_runs, name):
    res = dry_runs[name]
    assert res.returncode != 0
    out = res.stdout + res.stderr
    expect = BAD_CONFIGS[name][1]
    assert expect in out, out[-2000:]
    assert "Job stats" not in out  # failed while reading the config, before building jobs


def test_schema_rejects_unknown_keys_bad_values_and_unknown_methods():
    """Direct schema checks (fast), one per kind of mistake, with the offending key named."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema = str(ROOT / "config" / "schema.yaml")
    for name in ("quick.yaml", "paper.yaml", "smoke.yaml"):
        # paper.yaml must be complete on its own: it is deep-merged over quick.yaml, so a
        # missing key would silently inherit the quick profile's value.
        if name != "smoke.yaml":
            validate(load_config(name), schema)
    cases = [
        (lambda c: c.update(profil="x"), "'profil' was unexpected"),
        (lambda c: c["experiments"].update(imagenet=c["experiments"]["mnist"]),
         "'imagenet' was unexpected"),
        (lambda c: c.update(device="gpu"), "'gpu' is not one of"),
        (lambda c: c["experiments"]["svhn"].update(seeds=0), "seeds"),
        (lambda c: c["experiments"]["svhn"].update(dataset="svhn2"), "dataset"),
        (lambda c: c["experiments"]["cifar10"]["methods"].append("pcDEQ-3-MC-ReLU6*x"),
         "pcDEQ-3-MC-ReLU6*x"),
        (lambda c: c["experiments"]["mnist"]["sizes"]["SC"].update(train_limit=-5),
         "train_limit"),
    ]
    for edit, expect in cases:
        cfg = load_config("quick.yaml")
        edit(cfg)
        with pytest.raises(WorkflowError) as err:
            validate(cfg, schema)
        assert expect in str(err.value) + str(err.value.args), expect


# ------------------------------------------------------------------------- the job list
def test_paper_profile_dry_run_lists_300_training_jobs_and_every_artifact(dry_runs):
    res = dry_runs["paper"]
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    counts = job_counts(out)
    # the paper's 32 methods, the 11 + 6 + 6 stable-DEQ baselines and the 5 multiscale models
    # on MNIST, 5 seeds each
    assert counts["train"] == (32 + 23 + 5) * 5 == 300
    assert counts["table"] == 9 and counts["figure"] == 9 and counts["dataset"] == 3
    assert "runs/paper/mnist/LipMDEQ-cert-MS/seed4.json" in out
    for m in ("monDEQ-L", "DEQ-JR-L-Tanh", "LipDEQ-MC-ReLU"):
        assert f"runs/paper/mnist/{m}/seed4.json" in out
    for m in ("monDEQ-SC", "DEQ-SC-Tanh", "LipDEQ-SC-ReLU"):
        assert f"runs/paper/cifar10/{m}/seed4.json" in out and f"runs/paper/svhn/{m}/seed4.json" in out
    for a in report.ARTIFACTS.values():
        ext = ".md" if a.kind == "table" else ".pdf"
        folder = "tables/paper" if a.kind == "table" else "figures/paper"
        assert f"{folder}/{a.name}{ext}" in out, a.name
    # real datasets and the paper's settings: no limits, no epoch overrides
    assert "runs/paper/cifar10/pcDEQ-1-MC-ReLU6-aug/seed4.json" in out
    assert "synthetic" not in out and "mnist5k" not in out


def test_fashion_profile_dry_run(dry_runs):
    """Fashion-MNIST: L models (pcDEQ and the four L baselines) 5 seeds at the paper's
    protocol, pcDEQ MC 2 seeds and SC 3, the conv baselines 1; MNIST-family artifacts only, into figures/fashion and
    tables/fashion; the data checked once before any training job; no theory notebooks."""
    res = dry_runs["fashion"]
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    counts = job_counts(out)
    # L: 8 methods x 5 seeds; conv: 4 pcDEQ MC x 2 seeds, 4 pcDEQ SC x 3, 5 baselines x 1
    # (method_seeds) and monDEQ-SC 2 (C6's Welch interval); multiscale: 5 models x 1 seed,
    # MDEQ-MS and LipMDEQ-MS 2 (C10's)
    assert counts["train"] == 8 * 5 + 4 * 2 + 4 * 3 + 5 + 1 + 5 + 2 == 73
    assert "runs/fashion/fashion_mnist/monDEQ-SC/seed1.json" in out
    assert "runs/fashion/fashion_mnist/LipMDEQ-MS/seed1.json" in out
    assert "runs/fashion/fashion_mnist/LipMDEQ-cert-MS/seed1.json" not in out
    assert counts["dataset"] == 1 and counts["claims_table"] == 1
    assert counts["beyond_contraction"] == 1
    assert counts["table"] == 5 and counts["figure"] == 7 and "theory_geometry" not in counts
    for m in ("pcDEQ-1-L-Tanh", "monDEQ-L", "DEQ-JR-L-Tanh", "LipDEQ-L-Tanh"):
        assert f"runs/fashion/fashion_mnist/{m}/seed4.json" in out
    assert "runs/fashion/fashion_mnist/pcDEQ-1-SC-Tanh/seed2.json" in out
    assert "runs/fashion/fashion_mnist/pcDEQ-1-SC-Tanh/seed3.json" not in out
    assert "runs/fashion/fashion_mnist/pcDEQ-1-MC-Tanh/seed2.json" not in out
    assert "runs/fashion/fashion_mnist/DEQ-SC-Tanh/seed0.json" in out
    assert "runs/fashion/fashion_mnist/DEQ-SC-Tanh/seed1.json" not in out
    for name in ("table1_mnist.md", "table8_stable_deqs.md", "claims.md"):
        assert f"tables/fashion/{name}" in out
    # method_max_iter: the conv DEQs' solves stop at 50, every other run keeps the paper's cap
    train_cmds = {m[1]: m[0] for m in re.finditer(
        r"-m pcdeq train --dataset \S+ --method (\S+)\s+--seed 0 .*?--device", out, re.S)}
    assert len(train_cmds) == 26, sorted(train_cmds)
    capped = {m for m, cmd in train_cmds.items() if "--max-iter" in cmd}
    assert capped == {"DEQ-MC-Tanh", "DEQ-SC-Tanh"}, capped
    assert all("--max-iter 50 " in train_cmds[m] for m in capped)
    assert "fig4_sigma_max.pdf" in out and "table2_svhn" not in out and "fig9_svhn" not in out


def test_fashion_part_targets_split_its_training_jobs(dry_runs):
    """The README's part-only commands: l_runs, conv_runs and ms_runs train disjoint parts
    of the fashion profile that together are all of its 73 training jobs, and nothing else."""
    parts = {}
    for part in ("l_runs", "conv_runs", "ms_runs"):
        res = dry_runs[part]
        assert res.returncode == 0, res.stderr[-3000:]
        out = res.stdout + res.stderr
        assert set(job_counts(out)) == {"train", "dataset", part, "total"}, job_counts(out)
        parts[part] = set(re.findall(r"runs/fashion/fashion_mnist/([\w.-]+)/seed\d\.json", out))
    assert all(m.endswith("-MS") or "-MS-" in m for m in parts["ms_runs"]) and len(parts["ms_runs"]) == 5
    assert all("-L-" in m or m.endswith("-L") for m in parts["l_runs"]) and len(parts["l_runs"]) == 8
    assert all(("-SC" in m or "-MC" in m) for m in parts["conv_runs"]) and len(parts["conv_runs"]) == 13
    counts = {p: job_counts(dry_runs[p].stdout + dry_runs[p].stderr)["train"] for p in parts}
    # conv: pcDEQ MC x 2 seeds, SC x 3, 5 baselines, monDEQ-SC seed 1
    assert counts == {"l_runs": 40, "conv_runs": 4 * 2 + 4 * 3 + 5 + 1, "ms_runs": 7}


QUEUE = "workflow/scripts/background_queue.sh"


def queue_cmd(jobs: Path) -> list[str]:
    """The background queue on the smoke profile, one thread per job."""
    return ["bash", QUEUE, "smoke", "1", str(jobs)]


def queue_jobs(path: Path) -> list[str]:
    """The records a background job list names ("DATASET METHOD SEED" lines)."""
    out = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            dataset, method, seed = line.split()
            out.append(f"{dataset}/{report.safe_method(method)}/seed{seed}")
    return out


def test_background_job_lists_name_jobs_of_their_profile(dry_runs):
    """Every line of workflow/scripts/queues/PROFILE_*.txt is a training job of that profile
    (its dry run lists it), and no job is in two lists: a queue cannot train a run the
    profile's artifacts would not read, nor two queues the same run at once."""
    res = dry_runs["fashion"]
    assert res.returncode == 0, res.stderr[-3000:]
    profile_jobs = set(re.findall(r"output: runs/fashion/(\S+)\.json,", res.stdout + res.stderr))
    lists = sorted((ROOT / "workflow/scripts/queues").glob("fashion_*.txt"))
    assert lists
    named = [job for path in lists for job in queue_jobs(path)]
    assert set(named) <= profile_jobs, sorted(set(named) - profile_jobs)
    assert len(named) == len(set(named)), "a job in two lists"


@pytest.mark.parametrize("lines, expect", [
    ("mnist5k pcDEQ-1-L-Tanh 0\nmnist5k pcDEQ-2-L-Sigmoid 0 --epochs 40\n",
     "2:mnist5k pcDEQ-2-L-Sigmoid 0 --epochs 40"),  # sizes by hand
    ("mnist5k pcDEQ-1-L-Tanh 0\r\n", 'with Unix line ends'),
    ("mnist5k pcDEQ-1-L-Tanh 0\nmnist5k pcDEQ-1-L-Sigmoid 0\n",  # pcDEQ-1 has no sigmoid
     "No rule to produce runs/smoke/mnist5k/pcDEQ-1-L-Sigmoid/seed0.json"),
])
def test_background_queue_refuses_a_bad_job_list_before_any_job(tmp_path, lines, expect):
    """A job list is checked whole, by pattern and by a Snakemake dry run of every line, before
    the first job starts: a bad last line cannot surface hours later, in its turn."""
    clone = fresh_clone(tmp_path / "clone")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(lines.encode())
    res = subprocess.run(queue_cmd(bad), cwd=clone,
                         env={**os.environ, "PY": sys.executable}, capture_output=True, text=True)
    assert res.returncode == 2 and expect in res.stderr, res.stdout + res.stderr
    assert not (clone / "runs").exists()


def test_background_queue_term_stops_the_whole_job(tmp_path):
    """`kill -TERM <queue>` ends the job in progress, not only Snakemake: Snakemake on TERM
    waits for its running job, so the queue signals the job's process group. The training is
    stood in for by a `sleep` in that group (PY answers Snakemake's dry run and dataset step
    for real, and the job itself with the sleep); it must be gone when the queue has exited."""
    clone = fresh_clone(tmp_path / "clone")
    pidfile = tmp_path / "job.pid"
    fake = tmp_path / "py"
    fake.write_text(f"""#!/usr/bin/env bash
case " $* " in *" --dry-run "*|*" --until "*) exec {shlex.quote(sys.executable)} "$@";; esac
sleep 300 & echo $! > {shlex.quote(str(pidfile))}; wait
""")
    fake.chmod(0o755)
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("mnist5k pcDEQ-1-L-Tanh 0\n")
    queue = subprocess.Popen(queue_cmd(jobs), cwd=clone,
                             env={**os.environ, "PY": str(fake)}, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(600):
            if pidfile.exists() and pidfile.read_text().strip():
                break
            assert queue.poll() is None, queue.communicate()[0]
            time.sleep(0.1)
        job = int(pidfile.read_text())
        queue.terminate()
        assert queue.wait(timeout=60) == 143
    finally:
        if queue.poll() is None:
            queue.kill()

    def alive(pid: int) -> bool:  # a zombie (killed, not yet reaped by init) counts as gone
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    for _ in range(600):  # a generous wait on a loaded machine: gone at all is the test
        if not alive(job):
            break
        time.sleep(0.1)
    else:
        os.kill(job, 9)
        pytest.fail("the job outlived the queue's TERM")


def test_background_queue_trains_at_the_profiles_protocol(tmp_path):
    """The queue runs Snakemake's own train rule per line: the record's epochs, image limits
    and threads come from the profile (smoke: L for 2 epochs on 256 / 64 images), a last line
    without a newline counts, and a job already finished is skipped."""
    clone = fresh_clone(tmp_path / "clone")
    env = {**os.environ, "PY": sys.executable}
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("# a comment\n\nmnist5k pcDEQ-1-L-Tanh 0")
    for _ in range(2):  # the second pass finds the record and trains nothing
        res = subprocess.run(queue_cmd(jobs), cwd=clone, env=env,
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0 and "FAILED" not in res.stdout, res.stdout[-3000:] + res.stderr[-3000:]
    assert "done already: runs/smoke/mnist5k/pcDEQ-1-L-Tanh/seed0.json" in res.stdout
    rec = json.loads((clone / "runs/smoke/mnist5k/pcDEQ-1-L-Tanh/seed0.json").read_text())
    size = profile_config("smoke.yaml")["experiments"]["mnist"]["sizes"]["L"]
    assert rec["status"] == "complete" and rec["threads"] == 1
    assert rec["hparams"]["epochs"] == size["epochs"] == len(rec["epochs"])
    assert rec["limits"] == {"train_limit": size["train_limit"], "test_limit": size["test_limit"]}
    assert (clone / "runs/smoke/mnist5k/pcDEQ-1-L-Tanh/seed0.pt").is_file()


def profile_config(name: str) -> dict:
    """config/quick.yaml with a profile merged over it by Snakemake's own function, as
    --configfile merges it (mappings merge; lists and null replace)."""
    from snakemake.utils import update_config

    cfg = load_config("quick.yaml")
    if name != "quick.yaml":
        update_config(cfg, load_config(name))
    return cfg


@pytest.mark.parametrize("profile,config_file,dry", [("quick", "quick.yaml", "clone_all"),
                                                     ("fashion", "fashion.yaml", "fashion")])
def test_committed_reference_is_the_whole_profile_at_its_protocol(dry_runs, profile,
                                                                   config_file, dry):
    """results/<profile>/ holds one finished record for every training job of the profile and
    nothing else, each trained as the profile says: the paper's (or the baseline's own)
    hyperparameters with only the profile's epoch / image limits changed (the fashion L models:
    none, the paper's protocol on the full 60,000 / 10,000 images), every epoch recorded, and
    the weights of its reference_weights models beside the records. The fashion profile's
    long conv runs (issue 18) land over several sessions: until then a conv job may be
    missing, and if it has started, its unfinished record and checkpoint are committed in
    results/fashion/in_progress/ (workflow/scripts/stash_runs.sh) at the profile's protocol."""
    from pcdeq.hparams import dataset_info, hyperparameters
    from pcdeq.report import arch_key, load_run

    res = dry_runs[dry]
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = set(re.findall(rf"output: runs/{profile}/(\S+)\.json,", res.stdout + res.stderr))
    ref = ROOT / "results" / profile
    committed = {p.relative_to(ref).with_suffix("").as_posix() for p in ref.glob("*/*/seed*.json")}
    assert committed <= jobs, f"not in the profile: {sorted(committed - jobs)}"
    missing = jobs - committed
    if profile == "quick":
        assert not missing, f"missing: {sorted(missing)}"
    else:
        assert all(arch_key(j.split("/")[1]) != "L" for j in missing), sorted(missing)
    cfg = profile_config(config_file)
    sizes = {exp["dataset"]: exp["sizes"] for exp in cfg["experiments"].values() if exp}
    caps = {exp["dataset"]: exp.get("method_max_iter", {}) for exp in cfg["experiments"].values() if exp}

    def protocol(dataset: str, method: str) -> dict:
        """The hyperparameters a run of the profile records: Table 5's, with the profile's
        epochs and solver cap where it sets them."""
        want = hyperparameters(dataset, method).to_dict()
        epochs = sizes[dataset][arch_key(method)]["epochs"]
        want["epochs"] = want["epochs"] if epochs is None else epochs
        want["max_iter"] = caps[dataset].get(method, want["max_iter"])
        return want

    for job in sorted(missing):
        part = ref / "in_progress" / f"{job}.json.part"
        if part.exists():  # started: a resumable state at the profile's protocol
            assert Path(f"{part}.ckpt").is_file(), part
            rec = json.loads(part.read_text())
            dataset, method = job.split("/")[:2]
            size = sizes[dataset][arch_key(method)]
            want = protocol(dataset, method)
            assert rec["status"] == "running" and rec["hparams"] == want, part
            assert 1 <= len(rec["epochs"]) < want["epochs"], part
            assert rec["limits"] == {"train_limit": size["train_limit"],
                                     "test_limit": size["test_limit"]}, part
    for path in sorted(ref.glob("*/*/seed*.json")):
        run = load_run(path)
        assert run.status == "complete", path
        size = sizes[run.dataset][arch_key(run.method)]
        want = protocol(run.dataset, run.method)
        assert run.hparams == want, path
        assert len(run.epochs) == want["epochs"], path
        rec = json.loads(path.read_text())
        assert rec["limits"] == {"train_limit": size["train_limit"],
                                 "test_limit": size["test_limit"]}, path
        if profile == "fashion":  # the real data set, whole unless the profile limits it
            assert run.data["n_train"] == (size["train_limit"] or 60000) and not run.data["synthetic"]
            assert run.data["n_test"] == (size["test_limit"] or 10000), path
    for method in cfg.get("reference_weights", []):
        for exp in cfg["experiments"].values():
            if exp and method in exp["methods"] and not dataset_info(exp["dataset"]).synthetic:
                rec = report.record_path(ref, exp["dataset"], method, 0)
                if rec.exists():
                    assert rec.with_suffix(".pt").is_file(), rec.with_suffix(".pt")


def test_one_artifact_runs_only_the_training_jobs_it_needs(dry_runs):
    """Figure 4 reads the MNIST L models only: 4 methods x 2 seeds in the quick profile."""
    res = dry_runs["fig4"]
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    assert job_counts(out) == {"train": 8, "profile_record": 1, "figure": 1, "total": 10}
    trained = set(re.findall(r"output: (runs/quick/\S+/seed\d\.json)", out))
    assert trained == {f"runs/quick/mnist5k/{m}/seed{s}.json" for s in (0, 1)
                       for m in ("pcDEQ-1-L-ReLU6", "pcDEQ-1-L-Tanh", "pcDEQ-1-L-Softsign",
                                 "pcDEQ-2-L-Sigmoid")}


def test_fresh_clone_all_retrains_and_regenerates_every_committed_artifact(dry_runs):
    """`snakemake --cores 1 all` in a fresh clone: every run trained, every artifact redone,
    even though the committed artifacts are newer than everything they are made from."""
    res = dry_runs["clone_all"]
    assert res.returncode == 0, res.stderr[-3000:]
    counts = job_counts(res.stdout + res.stderr)
    # pcDEQ, the MNIST baselines, the multiscale models
    assert counts["train"] == 12 * 2 + 11 * 2 + 5 * 2 + 8 + 12 == 76
    assert counts["table"] == 9 and counts["figure"] == 9 and counts["profile_record"] == 1
    assert counts["claims_table"] == 1 and counts["beyond_contraction"] == 1


def test_fresh_clone_one_committed_artifact_needs_force(dry_runs):
    """A committed artifact is up to date for Snakemake; `--force` (as the README says) redoes
    it and trains only the runs it reads."""
    assert "Nothing to be done" in dry_runs["clone_fig4"].stdout + dry_runs["clone_fig4"].stderr
    res = dry_runs["clone_fig4_force"]
    assert res.returncode == 0, res.stderr[-3000:]
    assert job_counts(res.stdout + res.stderr) == {"train": 8, "profile_record": 1, "figure": 1, "total": 10}


def test_fresh_clone_named_target_regenerates_without_force(dry_runs):
    """`snakemake --cores 1 fig4` (the paper's short name) in a fresh clone: the artifact is
    redone from the runs it reads, and only those, without --force."""
    res = dry_runs["clone_fig4_named"]
    assert res.returncode == 0, res.stderr[-3000:]
    assert job_counts(res.stdout + res.stderr) == {"train": 8, "profile_record": 1, "figure": 1,
                                                   "fig4": 1, "total": 11}
    # Table 8 reads every run of the paper's architectures (it shows each dataset that has a
    # baseline, pcDEQ beside it); the multiscale runs are Table 10's
    counts = job_counts(dry_runs["clone_table8_named"].stdout + dry_runs["clone_table8_named"].stderr)
    assert counts["train"] == 66 and counts["table"] == 1
    # the theory notebooks read no runs
    counts = job_counts(dry_runs["clone_fig13_named"].stdout + dry_runs["clone_fig13_named"].stderr)
    assert "train" not in counts and counts["theory_geometry"] == 1
    # Figure 15 studies the reference_weights models (seed 0): it trains those runs only
    counts = job_counts(dry_runs["clone_fig15_named"].stdout + dry_runs["clone_fig15_named"].stderr)
    assert counts == {"train": 10, "profile_record": 1, "model_evidence": 1, "beyond_contraction": 1,
                      "fig15": 1, "total": 14}, counts


def test_committed_records_regenerate_the_artifacts_without_training(dry_runs):
    """`--config runs_from=committed`: the claims (and Figure 15) and every artifact are made
    from the records and weights committed in results/<profile>/, in a fresh clone, without a
    training or download job, and nothing writes records or weights into results/ (only the
    measurements of the committed weights, model_evidence.json, are remade there)."""
    res = dry_runs["clone_fashion_committed_claims"]
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    counts = job_counts(out)
    assert "train" not in counts and "dataset" not in counts and "reference_record" not in counts
    assert counts["claims_table"] == 1 and counts["beyond_contraction"] == 1, counts
    # the notebooks read the committed fashion records and weights
    assert '"dir": "results/fashion"' in out and "results/fashion/fashion_mnist/pcDEQ-1-L-Tanh/seed0.pt" in out
    assert "logs/fashion/committed/profile.json" in out
    jobs_ = dry_run_jobs(out)
    into_results = {(j["rule"], o) for j in jobs_ for o in j.get("output", "").split(", ")
                    if o.startswith("results/")}
    assert jobs_ and into_results == {("model_evidence", "results/fashion/model_evidence.json")}, into_results
    # the quick profile's committed records are the whole profile: every artifact, no training
    counts = job_counts(dry_runs["clone_quick_committed_all"].stdout + dry_runs["clone_quick_committed_all"].stderr)
    assert "train" not in counts and counts["table"] == 9 and counts["figure"] == 9, counts


def test_committed_records_missing_or_a_misspelt_mode_are_refused(dry_runs):
    res = dry_runs["clone_smoke_committed"]
    assert res.returncode != 0 and "Job stats" not in res.stdout
    assert "no committed run records in results/smoke/" in res.stdout + res.stderr
    assert "drop `--config runs_from=committed`" in res.stdout + res.stderr
    res = dry_runs["runs_from_typo"]
    assert res.returncode != 0 and "'commited' is not one of ['fresh', 'committed']" in res.stdout + res.stderr


def test_claims_refuse_committed_weights_without_their_measurements(dry_runs):
    """The quick claims read the fashion profile's committed evidence: with the file gone (and
    the weights still there) the workflow stops before any job, naming the commands that
    remeasure it, instead of keeping the committed claims table as if nothing had changed."""
    res = dry_runs["no_fashion_evidence"]
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "Job stats" not in out
    assert f"results/fashion/{EVIDENCE_FILE} is missing beside the weights" in out
    assert "python -m pcdeq evidence --profile fashion --dir results/fashion`" in out
    assert ("--forcerun model_evidence results/fashion/model_evidence.json --configfile "
            "config/fashion.yaml --config runs_from=committed") in out
    # the control: the same clone with the file in place plans the claims job
    assert dry_runs["clone_claims_named"].returncode == 0


# ----------------------------------------------------------------- the artifact registry
def dry_run_jobs(out: str) -> list[dict[str, str]]:
    """The jobs of a `snakemake -n -p` output: rule, input, output, log, shell command."""
    jobs = []
    for m in re.finditer(r"^(?:local)?rule (\w+):\n(.*?)(?=\n\n|\Z)", out, re.M | re.S):
        job = {"rule": m[1], "shell": ""}
        for line in m[2].splitlines():
            key, _, value = line.strip().partition(": ")
            if key in ("input", "output", "log"):
                job[key] = value
            elif line.startswith("Shell command: "):
                job["shell"] = line[len("Shell command: "):]
        jobs.append(job)
    return jobs


def test_registry_entries_are_complete():
    """Every artifact names a notebook of the registry that exists and declares (in its
    `parameters` cell) every parameter the workflow passes it, a report section, a rendering
    rule, and a short name of its own; Tables 5-7 depend on pcdeq/hparams.py, whose
    hyperparameters they print."""
    import papermill

    shorts = [a.short for a in report.ARTIFACTS.values()]
    assert len(shorts) == len(set(shorts)), shorts
    for a in report.ARTIFACTS.values():
        assert report.NOTEBOOKS[a.notebook.path] is a.notebook, a.name
        assert (ROOT / a.notebook.path).is_file(), a.name
        assert a.section in report.SECTIONS and a.kind in report.SUFFIXES, a.name
        assert a in report.RENDER_RULES[a.rule].artifacts, a.name
        assert all(n in report.ARTIFACTS for n in a.target_also), a.name
    for nb in report.NOTEBOOKS.values():
        declared = papermill.inspect_notebook(str(ROOT / nb.path))
        assert set(nb.params) <= set(declared), (nb.path, set(nb.params) - set(declared))
        assert all(list(ROOT.glob(g)) for g in nb.code), (nb.path, nb.code)  # none stale
    assert {s for s in report.SECTIONS} == {a.section for a in report.ARTIFACTS.values()}
    for name in report.HPARAM_TABLES.values():
        code = report.ARTIFACTS[name].notebook.code_files(ROOT)
        assert "pcdeq/hparams.py" in code and "pcdeq/report/tables.py" in code, code


def test_committed_artifacts_are_the_registry():
    """The quick profile's committed tables and figures are exactly the registry's files (so
    the names the notebooks, pcdeq.theory and pcdeq.claims write under are the registry's);
    the fashion profile's are among them."""
    ls = subprocess.run(["git", "ls-files", "tables", "figures"], cwd=ROOT, capture_output=True,
                        text=True)
    if ls.returncode != 0:
        pytest.skip("not a git checkout: cannot tell the tracked files")
    tracked = set(ls.stdout.split())
    folder = {"table": "tables", "figure": "figures"}
    quick = {str(p) for a in report.ARTIFACTS.values() for p in a.paths(folder[a.kind])}
    assert {f for f in tracked if f.count("/") == 1} == quick
    fashion = {str(p) for a in report.ARTIFACTS.values()
               for p in a.paths(f"{folder[a.kind]}/fashion")}
    assert {f for f in tracked if "/fashion/" in f} <= fashion


def test_rendering_rules_are_generated_from_the_registry(dry_runs):
    """Every Papermill job of `all` (paper profile: every artifact) is a job of a rule of
    RENDER_RULES, runs its artifact's notebook with exactly the registry's parameters, reads the
    notebook's code, keeps a log, and writes exactly the registry's files; no rule file writes
    out a Papermill command or a notebook path of its own."""
    res = dry_runs["paper"]
    assert res.returncode == 0, res.stderr[-3000:]
    papermill = [j for j in dry_run_jobs(res.stdout + res.stderr) if "-m papermill" in j["shell"]]
    folder = {"table": "tables/paper", "figure": "figures/paper"}
    want = {str(p) for a in report.ARTIFACTS.values() for p in a.paths(folder[a.kind])}
    assert {f for j in papermill for f in j["output"].split(", ")} == want
    assert {j["rule"] for j in papermill} == set(report.RENDER_RULES)
    for job in papermill:
        name = Path(job["output"].split(", ")[0]).stem
        nb = report.ARTIFACTS[name].notebook
        words = shlex.split(job["shell"])
        params = json.loads(words[words.index("-y") + 1])
        assert sorted(params) == sorted(nb.params), name
        assert f" {nb.path} " in job["shell"], name
        inputs = job["input"].split(", ")
        assert set(nb.code_files(ROOT)) <= set(inputs), name
        assert job["log"] == f"logs/paper/notebooks/{name}.ipynb, logs/paper/notebooks/{name}.log"
        assert report.ARTIFACTS[name].rule == job["rule"], name
    rule_files = [ROOT / "Snakefile", *(ROOT / "workflow").rglob("*.smk")]
    with_papermill = [f.name for f in rule_files if "papermill" in f.read_text()]
    assert with_papermill == ["artifacts.smk"], with_papermill
    assert not [f.name for f in rule_files if re.search(r"notebooks/\w+\.ipynb", f.read_text())]


def test_every_artifact_has_its_named_target(dry_runs):
    """`snakemake --list-target-rules` names every artifact by its short name; `claims` also
    makes Figure 15 and trains every run."""
    res = dry_runs["target_rules"]
    assert res.returncode == 0, res.stderr[-3000:]
    targets = {line.split(" ")[0] for line in res.stdout.splitlines() if line and line[0] != " "}
    assert {a.short for a in report.ARTIFACTS.values()} <= targets
    out = dry_runs["clone_claims_named"].stdout + dry_runs["clone_claims_named"].stderr
    counts = job_counts(out)
    assert counts["train"] == 76 and counts["claims_table"] == 1 and counts["claims"] == 1
    assert counts["beyond_contraction"] == 1


# --------------------------------------------------------------------------- the report
@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> Path:
    """Two seeds of a real, tiny training run (L model, MNIST 5k subset), via the CLI."""
    root = tmp_path_factory.mktemp("runs")
    for seed in (0, 1):
        out = report.record_path(root, "mnist5k", "pcDEQ-1-L-ReLU6", seed)
        rc = cli_main(["train", "--dataset", "mnist5k", "--method", "pcDEQ-1-L-ReLU6",
                       "--seed", str(seed), "--out", str(out), "--epochs", "2",
                       "--train-limit", "256", "--test-limit", "128", "--device", "cpu",
                       "--threads", "1", "--quiet"])
        assert rc == 0
    return root


def test_aggregation_over_seeds_matches_the_records(tiny_runs):
    runs = report.load_runs(tiny_runs)
    assert [(r.method, r.seed) for r in runs] == [("pcDEQ-1-L-ReLU6", 0), ("pcDEQ-1-L-ReLU6", 1)]
    raw = [json.loads(p.read_text()) for p in report.find_records(tiny_runs)]
    finals = [r["epochs"][-1]["test_acc"] for r in raw]
    bests = [max(e["test_acc"] for e in r["epochs"]) for r in raw]
    (s,) = report.summarize(runs)
    assert s.seeds == (0, 1) and s.epochs == 2 and s.n_params == 70410
    assert s.final == pytest.approx((statistics.fmean(finals), statistics.stdev(finals)))
    assert s.best == pytest.approx((statistics.fmean(bests), statistics.stdev(bests)))
    c = report.curve(runs, "test_acc", "x")
    assert c.epochs == [1, 2] and c.n == 2
    assert c.lo[1] == min(finals) and c.hi[1] == max(finals)

    table = report.make_table("table1_mnist", runs, "test")
    md, tex = table.to_markdown(), table.to_latex()
    row = next(line for line in md.splitlines() if line.startswith("| pcDEQ-1-L-ReLU6 "))
    assert f"{s.final[0]:.2f} ± {s.final[1]:.2f}" in row
    assert "| 98.1 |" in row  # the paper's number, quoted beside ours
    assert "test profile" in md and "mnist5k" in md and "real data" in md
    assert "2 seeds x 2 epochs, 256 train / 128 test images" in md
    assert "monDEQ-SC‡" in md and "Winston & Kolter (2020)" in md
    assert r"\pm" in tex and r"\begin{tabular}" in tex and "±" not in tex


def test_diverged_run_is_reported_not_averaged(tiny_runs, tmp_path):
    runs_dir = tmp_path / "runs"
    shutil.copytree(tiny_runs, runs_dir)
    path = report.record_path(runs_dir, "mnist5k", "pcDEQ-1-L-ReLU6", 1)
    rec = json.loads(path.read_text())
    rec.update(status="diverged", epochs=[])  # diverged in its first epoch
    path.write_text(json.dumps(rec))
    runs = report.load_runs(runs_dir)
    (s,) = report.summarize(runs)
    assert s.seeds == (0,) and s.diverged == (1,)
    assert s.final == (runs[0].final_acc, None)
    assert "1 x 2 ep (+1 diverged)" in report.make_table("table1_mnist", runs, "t").to_markdown()


def test_figures_are_byte_stable_and_captioned(tiny_runs, tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    runs = report.load_runs(tiny_runs)
    files = []
    for d in ("a", "b"):
        fig = report.make_figure("fig4_sigma_max", runs, "test")
        files.append(report.save_figure(fig, tmp_path / d, "fig4_sigma_max"))
        assert "test profile" in fig._suptitle.get_text()
    for a, b in zip(*files):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert b"CreationDate" not in files[0][0].read_bytes()
    assert "sigma_max in [" in report.figure_summary("fig4_sigma_max", runs)


def test_synthetic_data_is_labelled_not_real(tiny_runs, tmp_path):
    rec = json.loads(next(iter(report.find_records(tiny_runs))).read_text())
    rec.update(dataset="synthetic-svhn", method="pcDEQ-1-SC-ReLU6")
    rec["data"].update(name="synthetic-svhn", family="svhn", synthetic=True,
                       description="synthetic stand-in for SVHN (not real data)")
    path = report.record_path(tmp_path, "synthetic-svhn", "pcDEQ-1-SC-ReLU6", rec["seed"])
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(rec))
    md = report.make_table("table2_svhn", report.load_runs(tmp_path), "quick").to_markdown()
    assert "SYNTHETIC STAND-IN for SVHN, not real data" in md


@pytest.mark.parametrize("corrupt, expect", [
    (lambda t: t[: len(t) // 2], "not valid JSON"),
    (lambda t: t.replace('"n_params"', '"n_parameters"'), "missing field 'n_params'"),
    (lambda t: t.replace('"status": "complete"', '"status": "running"'), "not finished"),
    (lambda t: t.replace('"test_acc": ', '"test_acc": "x", "was": ', 1),
     "epochs[0].test_acc should be a number"),
])
def test_malformed_record_error_names_the_file(tiny_runs, tmp_path, corrupt, expect):
    src = report.record_path(tiny_runs, "mnist5k", "pcDEQ-1-L-ReLU6", 0)
    bad = report.record_path(tmp_path, "mnist5k", "pcDEQ-1-L-ReLU6", 0)
    bad.parent.mkdir(parents=True)
    bad.write_text(corrupt(src.read_text()))
    with pytest.raises(report.RecordError) as err:
        report.load_runs(tmp_path)
    assert str(err.value).startswith(str(bad)) and expect in str(err.value)


def test_record_in_the_wrong_place_is_refused(tiny_runs, tmp_path):
    src = report.record_path(tiny_runs, "mnist5k", "pcDEQ-1-L-ReLU6", 0)
    wrong = report.record_path(tmp_path, "mnist5k", "pcDEQ-1-L-Tanh", 0)
    wrong.parent.mkdir(parents=True)
    shutil.copy(src, wrong)
    with pytest.raises(report.RecordError, match="but lies at"):
        report.load_run(wrong)


def test_notebook_fails_naming_a_malformed_record(tiny_runs, tmp_path):
    """The notebook the workflow runs stops on a bad record and says which file it was."""
    import papermill

    runs = tmp_path / "runs"
    shutil.copytree(tiny_runs, runs)
    bad = report.record_path(runs, "mnist5k", "pcDEQ-1-L-ReLU6", 1)
    bad.write_text("{ not json")
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(
            str(ROOT / "notebooks" / "accuracy_tables.ipynb"), str(tmp_path / "out.ipynb"),
            parameters={"results_dir": str(runs)}, kernel_name="python3", cwd=str(ROOT),
            progress_bar=False)
    assert "RecordError" in str(err.value) and str(bad) in str(err.value)


def test_method_names_are_file_safe():
    from pcdeq import baseline_methods, paper_methods
    for method in (m for fam, ms in paper_methods().items() for m in ms + baseline_methods(fam)):
        safe = report.safe_method(method)
        assert "*" not in safe and report.method_from_safe(safe) == method
    assert report.safe_method("pcDEQ-1-MC-ReLU6*") == "pcDEQ-1-MC-ReLU6-aug"


# ------------------------------------------------------------------------- SLURM profile
def _path_without_sbatch(tmp_path: Path, fake_sbatch: bool) -> str:
    """A PATH with the venv's tools and the shell basics, with a stub `sbatch` or none."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("which", "sh", "bash", "git", "cat", "env", "uname"):
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    if fake_sbatch:  # a dry run only looks for it, it submits nothing
        (bin_dir / "sbatch").write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / "sbatch").chmod(0o755)
    return f"{bin_dir}:{Path(sys.executable).parent}"


@pytest.mark.parametrize("have_sbatch", [True, False])
def test_slurm_profile_dry_run_and_missing_sbatch(tmp_path, have_sbatch):
    """profiles/slurm: every job of the paper profile maps to sbatch resources; where sbatch
    is missing the workflow stops before submitting anything, saying so."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PATH"] = _path_without_sbatch(tmp_path, have_sbatch)
    res = subprocess.run([*SNAKEMAKE, "-n", "--nolock", "all", "--profile", "profiles/slurm",
                          "--configfile", "config/paper.yaml"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    if have_sbatch:
        assert res.returncode == 0, out[-3000:]
        assert job_counts(out)["train"] == 300
    else:
        assert res.returncode != 0
        assert "sbatch, which is not on PATH" in out and "Nothing was submitted" in out
        assert "Job stats" not in out


def test_readme_shows_the_committed_artifacts_verbatim():
    """Every table the README shows inline is a verbatim copy of the committed artifact (between
    `<!-- artifact: PATH -->` and `<!-- /artifact -->`), and every image it shows exists: the
    README never drifts from the results. The committed version is compared (git HEAD, where
    this is a checkout): a rerun of `all` on another machine rewrites the artifacts in the
    working tree with last-digit differences, which is no fault of the README."""
    import importlib.util

    # The marker pattern is defined once, in the script that refreshes the copies.
    spec = importlib.util.spec_from_file_location("sync_readme", ROOT / ".ci" / "sync_readme.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)

    def committed(path: str) -> str:
        show = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, capture_output=True,
                              text=True)
        return show.stdout if show.returncode == 0 else (ROOT / path).read_text()

    text = (ROOT / "README.md").read_text()
    blocks = {m[2]: m[3] for m in sync.BLOCK.finditer(text)}  # path -> the README's copy
    assert set(blocks) >= {"tables/table1_mnist.md", "tables/fashion/table1_mnist.md"}
    for path, block in blocks.items():
        assert block.strip() == committed(path).strip(), (
            f"README.md's copy of {path} is outdated: run `python .ci/sync_readme.py`")
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (ROOT / image).is_file(), image


def test_readme_names_every_artifact_and_its_target():
    """A reader finds each artifact of the registry in the README's artifact table, and its
    short name among the targets it lists: an artifact added to the registry without its row
    (Figure 15 was one) fails here, naming it."""
    text = (ROOT / "README.md").read_text()
    table = text.split("| file | content |", 1)[1].split("\n\n", 1)[0]
    listed = {Path(name).name for row in table.splitlines()
              for name in re.findall(r"`([\w/]+)`", row.split(" | ")[0])}
    for artifact in report.ARTIFACTS.values():
        assert artifact.name in listed, f"README's artifact table has no row for {artifact.name}"
    shorts = sorted({a.short for a in report.ARTIFACTS.values()},
                    key=lambda n: (n.rstrip("0123456789"), int(n[len(n.rstrip("0123456789")):] or 0)))
    targets = re.search(r"one artifact by its short paper name \((.*?);", text)
    assert targets, "README lost the target list of `snakemake --cores 1 fig4`"
    named = set(re.findall(r"`(\w+)`", targets[1]))
    for kind in ("fig", "table"):  # "`fig2` ... `fig16`": the first and the last of each kind
        of_kind = [n for n in shorts if n.startswith(kind) and n[len(kind):].isdigit()]
        assert {of_kind[0], of_kind[-1]} <= named, (kind, of_kind, named)
    assert {n for n in shorts if not n.rstrip("0123456789") in ("fig", "table")} <= named, named


def test_claims_notebook_outputs_were_made_from_the_committed_records():
    """The claims notebook reads results/quick and results/fashion by default, so a record
    committed without re-running it leaves its stored outputs stale, and `pytest --nbval`
    fails minutes into CI. This catches it in a second: the run and weight counts the notebook
    printed must be those of the records on disk. The fix: the claims render and the notebook
    run of README's *Long runs in the background*."""
    import json

    from pcdeq import claims

    nb = json.loads((ROOT / "notebooks" / "claims.ipynb").read_text())
    params = next(c for c in nb["cells"] if c["cell_type"] == "code")
    scope: dict = {}
    exec("".join(params["source"]), scope)
    printed = "".join("".join(o["text"]) for c in nb["cells"] if c["cell_type"] == "code"
                      for o in c.get("outputs", []) if o.get("output_type") == "stream")
    for s in claims.load_sources([{**src, "dir": str(ROOT / src["dir"])} for src in scope["sources"]]):
        line = f"{s.profile}: {len(s.runs)} complete real-data runs, {len(s.weights())} weight files"
        assert line in printed, (
            f"notebooks/claims.ipynb was not run on the committed records ({line!r} not in its "
            f"outputs): re-render the claims and re-run the notebook, then `python .ci/sync_readme.py`")
