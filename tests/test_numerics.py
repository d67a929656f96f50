"""C9 (pcdeq.numerics): the same run on two kernel paths against the seed spread; the rule
must flag a run that the kernel path changes like a change of seed."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from pcdeq import claims
from pcdeq.numerics import STABILITY_FRACTION, kernel_path_pairs, path_differences, stability
from pcdeq.stats import pooled_sd

ROOT = Path(__file__).resolve().parents[1]
TWO = ROOT / "tests" / "data" / "two_machines"


def _copy(src: Path, dst: Path, edit=None) -> None:
    r = json.loads(src.read_text())
    if edit:
        edit(r)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(r))


def _root(tmp_path: Path, method: str) -> Path:
    root = tmp_path / "results" / "quick"
    for s in (0, 1):
        rel = Path("mnist5k") / method / f"seed{s}.json"
        _copy(TWO / "reference" / rel, root / rel)
    return root


def test_the_unconstrained_deq_on_another_machine_is_flagged(tmp_path):
    """The negative control, measured: DEQ-L-Tanh retrained on another host (machine_b)
    drifts from its reference by more than a tenth of its seed spread."""
    root = _root(tmp_path, "DEQ-L-Tanh")
    rel = Path("mnist5k") / "DEQ-L-Tanh" / "seed0.json"
    _copy(TWO / "machine_b" / rel, root / "kernel_paths" / "machine_b" / rel)
    src = claims.Source.load("quick", root)
    pairs = kernel_path_pairs(root, src.runs)
    assert len(pairs) == 1 and pairs[0].path == "machine_b"
    (m,) = stability(pairs, src.runs)
    assert m.stable is False and m.worst_fraction > STABILITY_FRACTION
    assert m.max_relative > 0.1  # 0.0255 vs 0.0473 at epoch 20


def test_a_method_within_its_seed_spread_is_stable_and_the_claim_follows(tmp_path):
    root = _root(tmp_path, "pcDEQ-1-L-Softsign")
    rel = Path("mnist5k") / "pcDEQ-1-L-Softsign" / "seed0.json"
    runs = claims.Source.load("quick", root).runs
    sd = pooled_sd([[math.log(r.epochs[e].train_loss) for r in runs] for e in range(20)])[0]

    def nudge(frac):
        def edit(r):
            last = r["epochs"][-1]
            last["train_loss"] *= math.exp(frac * sd)  # |Δ log loss| = frac x the seed spread
            r["threads"] = 1
        return edit

    _copy(root / rel, root / "kernel_paths" / "threads1" / rel, nudge(0.02))
    c = claims.claim_numerical_stability(claims.Source.load("quick", root))
    assert c.verdict == claims.HOLDS, c.evidence
    assert "threads 2 vs 1" in c.evidence and "needs < 0.1" in c.decisive
    _copy(root / rel, root / "kernel_paths" / "threads1" / rel, nudge(0.5))
    c = claims.claim_numerical_stability(claims.Source.load("quick", root))
    assert c.verdict == claims.FAILS and "0.5 × seed spread" in c.decisive


def test_one_label_per_kernel_path_whatever_machines_made_the_references(tmp_path):
    """References from two machines of one kind, both retrained on one other CPU: the path is
    named once, with each differing field's values merged (not once per reference machine)."""
    root = tmp_path / "results" / "quick"
    method = "pcDEQ-1-L-Softsign"

    def env(cpu, platform):
        def edit(r):
            r["environment"] = {"threads": 2, "cpu": cpu, "platform": platform}
        return edit

    for s, plat in ((0, "host-a"), (1, "host-b")):
        rel = Path("mnist5k") / method / f"seed{s}.json"
        _copy(TWO / "reference" / rel, root / rel, env("Xeon", plat))
        _copy(TWO / "reference" / rel, root / "kernel_paths" / "cpu-amd" / rel, env("EPYC", "host-c"))
    pairs = kernel_path_pairs(root, claims.Source.load("quick", root).runs)
    assert len(pairs) == 2
    assert path_differences(pairs) == {
        "cpu-amd": "cpu Xeon vs EPYC, platform host-a/host-b vs host-c"}
    c = claims.claim_numerical_stability(claims.Source.load("quick", root))
    assert c.evidence.count("cpu-amd (") == 1, c.evidence


def test_missing_or_mismatched_kernel_path_records_are_named(tmp_path):
    root = _root(tmp_path, "pcDEQ-1-L-Softsign")
    c = claims.claim_numerical_stability(claims.Source.load("quick", root))
    assert c.verdict == claims.UNTESTABLE and "kernel_paths.py quick 1" in c.why
    rel = Path("mnist5k") / "pcDEQ-1-L-Softsign" / "seed0.json"

    def other_lr(r):
        r["hparams"]["lr"] = 1.0

    _copy(root / rel, root / "kernel_paths" / "threads1" / rel, other_lr)
    c = claims.claim_numerical_stability(claims.Source.load("quick", root))
    assert c.verdict == claims.UNTESTABLE and "not the same run" in c.why and "hparams" in c.why
    shutil.rmtree(root / "kernel_paths")
    # a synthetic stand-in's record is passed over, as the claims pass over its twin
    _copy(TWO / "reference" / rel, root / "kernel_paths" / "threads1" / "synthetic-cifar10"
          / "pcDEQ-1-L-Softsign" / "seed0.json",
          lambda r: r.update(dataset="synthetic-cifar10", data={**r["data"], "family": "cifar10",
                                                                "synthetic": True}))
    assert kernel_path_pairs(root, claims.Source.load("quick", root).runs) == []
    shutil.rmtree(root / "kernel_paths")
    _copy(root / rel, root / "kernel_paths" / "threads1" / "mnist5k" / "pcDEQ-1-L-Softsign" / "seed7.json",
          lambda r: r.update(seed=7))
    with pytest.raises(ValueError, match="no record of pcDEQ-1-L-Softsign seed 7"):
        kernel_path_pairs(root, claims.Source.load("quick", root).runs)


def test_the_cross_cpu_path_refuses_the_records_own_cpu_and_names_this_one(tmp_path):
    """`kernel_paths.py PROFILE --cpu` retrains on this machine's CPU at the records' own thread
    count; on the CPU a record ran on that would be the same kernel path, so it is refused
    before any training, saying what to use instead."""
    import subprocess
    import sys

    import torch

    from pcdeq.train import environment

    here = environment(torch.device("cpu"))
    root = _root(tmp_path, "pcDEQ-1-L-Softsign")
    rec = root / "mnist5k" / "pcDEQ-1-L-Softsign" / "seed0.json"
    r = json.loads(rec.read_text())
    r["environment"] = {**(r.get("environment") or {}), "cpu": here["cpu"],
                        "cpu_capability": here["cpu_capability"]}
    rec.write_text(json.dumps(r))
    script = ROOT / "workflow" / "scripts" / "kernel_paths.py"
    run = subprocess.run([sys.executable, str(script), "quick", "--cpu"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode != 0 and "ran on this CPU" in run.stderr and "thread count" in run.stderr
    assert not (root / "kernel_paths").exists()
    both = subprocess.run([sys.executable, str(script), "quick", "1", "--cpu"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert both.returncode == 2 and "either a thread count" in both.stderr


def test_the_isa_path_refuses_a_record_made_with_that_isa_here(tmp_path):
    """`kernel_paths.py PROFILE --isa avx2` (this CPU, kernels limited to AVX2) would repeat the
    kernel path of a record made on this CPU with AVX2 kernels: refused before any training."""
    import subprocess
    import sys

    import torch

    from pcdeq.train import environment

    here = environment(torch.device("cpu"))
    root = _root(tmp_path, "pcDEQ-1-L-Softsign")
    rec = root / "mnist5k" / "pcDEQ-1-L-Softsign" / "seed0.json"
    r = json.loads(rec.read_text())
    r["environment"] = {**(r.get("environment") or {}), "cpu": here["cpu"], "cpu_capability": "AVX2"}
    rec.write_text(json.dumps(r))
    script = ROOT / "workflow" / "scripts" / "kernel_paths.py"
    run = subprocess.run([sys.executable, str(script), "quick", "--isa", "avx2"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode != 0 and "--isa avx2 would be the same kernel path" in run.stderr
    assert not (root / "kernel_paths").exists()
