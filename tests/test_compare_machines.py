"""The cross-machine check on real data: it passes a faithful rerun on another machine (a
committed pair of records from two hosts) and fails real changes injected into a fresh run
(learning rate, its schedule, pcDEQ's nonnegativity projection), naming method, epoch and
quantity."""

import json
import shutil
from pathlib import Path

import pytest

import pcdeq.train as train_mod
from pcdeq.compare import Tolerances, compare, difference, method_table, report_markdown, QUANTITIES
from pcdeq.layers import NonnegativeWeightNorm
from pcdeq.train import RunConfig, train

from conftest import DATA

PAIR = Path(__file__).parent / "data" / "two_machines"
METHOD = "pcDEQ-1-L-ReLU6"


def test_rerun_on_another_machine_passes():
    result = compare(PAIR / "machine_a", PAIR / "machine_b", Tolerances.measure(PAIR / "reference"))
    (rec,) = result.records
    assert not rec.bit_identical and rec.checkable
    assert result.exit_code == 0, report_markdown(result)
    # The pair is the hard case the old rule failed: beyond the largest seed-to-seed
    # difference of the reference (negative control of that rule).
    q = next(q for q in QUANTITIES if q.name == "train_loss")
    seeds = [json.loads((PAIR / "reference/mnist5k/DEQ-L-Tanh" / f"seed{s}.json").read_text())
             for s in (0, 1)]
    old_tol = max(difference(q, a["train_loss"], b["train_loss"])
                  for a, b in zip(seeds[0]["epochs"], seeds[1]["epochs"]))
    assert rec.worst["train_loss"].diff > old_tol


def test_torch_version_difference_warns(tmp_path):
    fresh = tmp_path / "b"
    shutil.copytree(PAIR / "machine_b", fresh)
    p = fresh / "mnist5k/DEQ-L-Tanh/seed0.json"
    rec = json.loads(p.read_text())
    rec["torch"] = "2.11.0+cu128"
    p.write_text(json.dumps(rec))
    report = report_markdown(compare(PAIR / "machine_a", fresh, Tolerances.measure(PAIR / "reference")))
    assert "Warning: different torch versions" in report and '"2.11.0+cu128"' in report
    assert "| torch |" in report  # side by side


# ------------------------------------------------------------------ injected changes
EPOCHS, DECAY = 4, 3  # a decay inside the short run, so that "one epoch early" can happen


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory):
    """Five seeds of a short pcDEQ L run (the reference), with the LR decay after epoch 3."""
    root = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as mp:
        _decay_at(mp, DECAY)
        for seed in range(5):
            _train(root, seed)
    return root


def _decay_at(mp, epoch: int) -> None:
    real = train_mod.resolve_hparams
    mp.setattr(train_mod, "resolve_hparams",
               lambda cfg: __import__("dataclasses").replace(real(cfg), lr_decay_epoch=epoch))


def _train(root: Path, seed: int) -> Path:
    out = root / "mnist5k" / METHOD / f"seed{seed}.json"
    train(RunConfig(dataset="mnist5k", method=METHOD, seed=seed, out=str(out), epochs=EPOCHS,
                    train_limit=640, test_limit=320, data_root=str(DATA), device="cpu",
                    threads=1, log=False, progress=False))
    return out


def _fresh(tmp_path, short_runs, mp, inject=None) -> "Comparison":
    fresh = tmp_path / "fresh"
    _decay_at(mp, DECAY)
    if inject:
        inject(mp)
    _train(fresh, 0)
    ref = tmp_path / "ref0"
    (ref / "mnist5k" / METHOD).mkdir(parents=True)
    shutil.copy(short_runs / "mnist5k" / METHOD / "seed0.json", ref / "mnist5k" / METHOD)
    return compare(ref, fresh, Tolerances.measure(short_runs))


def _failures(result) -> str:
    assert result.exit_code == 1, report_markdown(result)
    return "\n".join(result.failures())


def test_unchanged_rerun_passes(tmp_path, short_runs, monkeypatch):
    result = _fresh(tmp_path, short_runs, monkeypatch)
    assert result.exit_code == 0 and result.records[0].bit_identical


def test_doubled_learning_rate_fails(tmp_path, short_runs, monkeypatch):
    real = train_mod.Trainer.__init__

    def doubled(self, cfg):
        real(self, cfg)
        for g in self.opt.param_groups:
            g["lr"] *= 2
            g["initial_lr"] *= 2
    out = _failures(_fresh(tmp_path, short_runs, monkeypatch,
                           lambda mp: mp.setattr(train_mod.Trainer, "__init__", doubled)))
    assert f"mnist5k {METHOD} seed 0: lr differs at epoch 1" in out
    # the training itself moved beyond the seed spread as well, named with its epoch
    assert any(f"seed 0: {q.name} differs by" in out for q in QUANTITIES), out


def test_decay_one_epoch_early_fails(tmp_path, short_runs, monkeypatch):
    out = _failures(_fresh(tmp_path, short_runs, monkeypatch,
                           lambda mp: mp.setattr(train_mod.HParams, "milestones",
                                                 lambda self: [self.lr_decay_epoch - 1])))
    assert f"mnist5k {METHOD} seed 0: lr differs at epoch {DECAY}" in out


def test_missing_nonnegativity_projection_fails(tmp_path, short_runs, monkeypatch):
    out = _failures(_fresh(tmp_path, short_runs, monkeypatch,
                           lambda mp: mp.setattr(NonnegativeWeightNorm, "project_", lambda self: None)))
    assert f"mnist5k {METHOD} seed 0: invariant min_weight >= 0 broken at epoch 1" in out


def test_one_seed_is_not_checkable(tmp_path, short_runs):
    """A reference with one seed and no pool gives no tolerance at all (not an unbounded one):
    the record is named as not checkable."""
    ref = tmp_path / "one"
    (ref / "synthetic-svhn" / "pcDEQ-1-SC-ReLU6").mkdir(parents=True)
    src = Path(__file__).parents[1] / "results/quick/synthetic-svhn/pcDEQ-1-SC-ReLU6/seed0.json"
    shutil.copy(src, ref / "synthetic-svhn/pcDEQ-1-SC-ReLU6")
    result = compare(ref, ref, Tolerances.measure(PAIR / "reference"))
    assert result.not_checkable() == ["synthetic-svhn pcDEQ-1-SC-ReLU6 seed 0"]
    assert "**Not checkable**" in report_markdown(result)
    rec = result.records[0]
    assert not rec.checkable and all(t is None for t in rec.tolerances.values())
    assert "not checkable: one seed" in method_table(result, "synthetic-svhn", "pcDEQ-1-SC-ReLU6")
