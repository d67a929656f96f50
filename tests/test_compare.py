"""The reproducibility check (pcdeq.compare) on small trees of real records copied from the
committed reference (results/quick/mnist5k) and edited. Only the structure of results/quick is
relied on (an MNIST method with two seeds), not its numbers: it is regenerated now and then."""

import itertools
import json
import math
import shutil
from pathlib import Path

import pytest

from pcdeq.compare import (ALPHA, QUANTITIES, Tolerances, compare, main, measure_tolerances,
                           method_table)
from pcdeq.stats import t_quantile
from pcdeq.report import arch_key, method_from_safe

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "results" / "quick"
DATASET = "mnist5k"


def _two_seed_method() -> Path:
    """The first MNIST method folder of the reference with seeds 0 and 1."""
    for d in sorted((REFERENCE / DATASET).iterdir()):
        if (d / "seed0.json").is_file() and (d / "seed1.json").is_file():
            return d
    raise AssertionError(f"{REFERENCE / DATASET}: no method with seed0.json and seed1.json")


def _edit(path: Path, fn) -> None:
    rec = json.loads(path.read_text())
    fn(rec)
    path.write_text(json.dumps(rec))


@pytest.fixture
def trees(tmp_path):
    """(reference root, fresh root, safe method name): one method, seeds 0 and 1, identical."""
    src = _two_seed_method()
    for side in ("ref", "fresh"):
        dst = tmp_path / side / DATASET / src.name
        dst.mkdir(parents=True)
        for s in (0, 1):
            shutil.copy(src / f"seed{s}.json", dst / f"seed{s}.json")
    return tmp_path / "ref", tmp_path / "fresh", src.name


def _rec(root: Path, safe: str, seed: int) -> Path:
    return root / DATASET / safe / f"seed{seed}.json"


def _run(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_identical_records_are_bit_identical(trees, capsys):
    ref, fresh, safe = trees
    # timing is never compared
    _edit(_rec(fresh, safe, 0),
          lambda r: [e.update(seconds=e["seconds"] + 1.0) for e in r["epochs"]])
    result = compare(ref, fresh, Tolerances.bit_identical())
    assert len(result.records) == 2 and all(r.bit_identical for r in result.records)
    assert result.exit_code == 0 and result.within_tolerance
    assert _run(capsys, ref, fresh, "--exact")[0] == 0
    code, out = _run(capsys, ref, fresh)
    assert code == 0 and "PASS" in out
    method = method_from_safe(safe)
    table = method_table(result, DATASET, method)
    assert f"### {DATASET} {method}" in table
    assert all(f"| {q.name} |" in table for q in QUANTITIES)


def _tolerance_at(ref: Path, safe: str, quantity: str, epoch: int) -> float:
    sp = Tolerances.measure(ref).spread(DATASET, method_from_safe(safe), quantity, epoch)
    assert sp is not None and sp.sd > 0, (quantity, epoch)
    return sp.tolerance(0.0)


def test_small_change_within_tolerance_fails_only_exact(trees, capsys):
    ref, fresh, safe = trees
    t = _tolerance_at(ref, safe, "test_acc", 2)
    _edit(_rec(fresh, safe, 1), lambda r: r["epochs"][1].update(
        test_acc=r["epochs"][1]["test_acc"] + t / 2))
    result = compare(ref, fresh, Tolerances.measure(ref))
    assert not result.records[1].bit_identical and not result.records[1].exceeded
    assert _run(capsys, ref, fresh)[0] == 0
    code, out = _run(capsys, ref, fresh, "--exact")
    assert code == 1
    assert "seed 1: not bit-identical" in out and "test_acc from epoch 2" in out


def test_tolerance_is_the_prediction_bound_of_the_seed_spread(trees):
    """One method with two seeds: s = |x0 - x1| / sqrt(2), dof 1, and the bound for a new draw
    against one of them is t_(1 - ALPHA/2, 1) * sqrt(2) * s = t * |x0 - x1|."""
    ref, _, safe = trees
    a, b = (json.loads(_rec(ref, safe, k).read_text())["epochs"][2]["test_acc"] for k in (0, 1))
    assert a != b
    assert _tolerance_at(ref, safe, "test_acc", 3) == pytest.approx(
        t_quantile(1 - ALPHA / 2, 1) * abs(a - b), rel=1e-9)


def test_large_change_names_method_seed_epoch_quantity(trees, capsys, tmp_path):
    ref, fresh, safe = trees
    last = len(json.loads(_rec(ref, safe, 1).read_text())["epochs"])
    t = _tolerance_at(ref, safe, "test_acc", last)
    _edit(_rec(fresh, safe, 1), lambda r: r["epochs"][-1].update(
        test_acc=r["epochs"][-1]["test_acc"] + 2 * t + 1))
    report = tmp_path / "out" / "check.md"
    code, out = _run(capsys, ref, fresh, "--out", report)
    assert code == 1 and "FAIL" in out
    line = next(ln for ln in out.splitlines() if "test_acc differs" in ln)
    assert f"{method_from_safe(safe)} seed 1" in line and f"at epoch {last}" in line
    text = report.read_text()
    assert "## Per method" in text and "**NO**" in text


def test_missing_fresh_record_is_named(trees, capsys):
    ref, fresh, safe = trees
    _rec(fresh, safe, 1).unlink()
    code, out = _run(capsys, ref, fresh)
    assert code == 2
    assert f"missing fresh record: {_rec(fresh, safe, 1)}" in out


def test_missing_reference_record_is_named(trees, capsys):
    ref, fresh, safe = trees
    # a fresh seed the reference lacks
    shutil.copy(_rec(fresh, safe, 1), _rec(fresh, safe, 2))
    _edit(_rec(fresh, safe, 2), lambda r: r.update(seed=2))
    code, out = _run(capsys, ref, fresh)
    assert code == 2 and f"missing reference record: {_rec(ref, safe, 2)}" in out
    # a reference with one seed left: the tolerances cannot be measured, the record is named
    _rec(fresh, safe, 2).unlink()
    _rec(ref, safe, 1).unlink()
    code, out = _run(capsys, ref, fresh)
    assert code == 2 and f"missing reference record: {_rec(ref, safe, 1)}" in out
    assert "cannot measure the tolerances" in out


@pytest.mark.parametrize("side", ["ref", "fresh"])
def test_partial_record_is_named(trees, capsys, side):
    ref, fresh, safe = trees
    root = ref if side == "ref" else fresh
    # unfinished (status running, 2 epochs)
    _edit(_rec(root, safe, 1), lambda r: r.update(status="running", epochs=r["epochs"][:2]))
    code, out = _run(capsys, ref, fresh)
    assert code == 2 and str(_rec(root, safe, 1)) in out and "not finished" in out
    # fewer epochs than the other side (diverged after 2)
    _edit(_rec(root, safe, 1), lambda r: r.update(status="diverged"))
    code, out = _run(capsys, ref, fresh, "--tolerances-from", fresh if side == "ref" else ref)
    assert code == 2
    assert f"partial record: {_rec(root, safe, 1)} has 2 epochs (diverged)" in out


def test_different_hparams_not_comparable(trees, capsys):
    ref, fresh, safe = trees
    _edit(_rec(fresh, safe, 0), lambda r: r["hparams"].update(lr=r["hparams"]["lr"] * 2))
    result = compare(ref, fresh, Tolerances.measure(ref))
    assert not result.records[0].comparable and result.records[1].comparable
    code, out = _run(capsys, ref, fresh)
    assert code == 2
    line = next(ln for ln in out.splitlines() if "not comparable:" in ln)
    assert str(_rec(fresh, safe, 0)) in line and "hparams.lr" in line


def test_bad_roots(tmp_path, trees, capsys):
    ref, _, _ = trees
    (tmp_path / "empty").mkdir()
    code, out = _run(capsys, ref, tmp_path / "nowhere")
    assert code == 2 and "nowhere" in out
    code, out = _run(capsys, ref, tmp_path / "empty", "--exact")
    assert code == 2 and "no run records" in out


def test_measure_tolerances_on_reference(capsys):
    """Pools per dataset: every method's architecture and family group, and the architecture;
    a one-seed synthetic stand-in pools with nothing (not checkable, not 51 points wide)."""
    tol = measure_tolerances(REFERENCE)
    keys = {k for _, k in tol}
    assert {"L", "SC", "MC", "L pcDEQ", "L DEQ"} <= keys
    assert all(d == DATASET for d, _ in tol), "only mnist5k has two seeds in the quick profile"
    for per_q in tol.values():
        assert set(per_q) <= {q.name for q in QUANTITIES}
        for eps in per_q.values():
            assert all(math.isfinite(sp.sd) and sp.sd >= 0 and sp.dof >= 1 for sp in eps.values())
    code, out = _run(capsys, "--measure", REFERENCE)
    assert code == 0 and "| mnist5k | L pcDEQ |" in out
