"""Table 10, Figure 16 and C10 (the Lipschitz MDEQ's claim) from multiscale run records: the
numbers come from the right fields, and the claim's test fails where the claim is false."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcdeq import claims, report
from pcdeq.record import EpochRecord
from pcdeq.report import Run
from pcdeq.report.multiscale import multiscale_summaries, versus_reference

PARAMS = {"MDEQ-MS": 131634, "LipMDEQ-MS": 131634, "LipMDEQ-cert-MS": 131634,
          "pcDEQ-1-MS-Tanh": 129242, "pcDEQ-2-MS-Sigmoid": 129242}


def _run(method: str, seed: int, acc: float, seconds: float | tuple, jac=(0.5, 0.5), bound=None,
         fwd=(10.0, 12.0, 12.0), bwd=(8.0, 9.0, 9.0), train_acc: float | None = None) -> Run:
    train_acc = acc if train_acc is None else train_acc
    secs = seconds if isinstance(seconds, tuple) else (seconds,) * len(jac)
    epochs = tuple(EpochRecord.from_json(
        {"epoch": i + 1, "train_loss": 0.1, "train_acc": train_acc, "test_loss": 0.1, "test_acc": acc,
         "fwd_iters": fwd[i], "bwd_iters": bwd[i], "test_fwd_iters": fwd[i], "sigma_max": None,
         "jac_norm": jac[i], **({"jac_bound": bound[i]} if bound else {}), "seconds": secs[i]},
        f"epochs[{i}]") for i in range(len(jac)))
    data = {"family": "mnist", "synthetic": False, "description": "test data", "n_train": 100,
            "n_test": 10}
    hp = {"epochs": len(epochs), "lr": 1e-3, "batch_size": 128, "optimizer": "adam",
          "schedule": "cosine", "lr_decay_epoch": None}
    return Run("complete", "mnist5k", method, seed, data, hp, PARAMS[method], epochs,
               solver="broyden", path=f"/x/{method}/seed{seed}.json")


def _runs(lip_acc=(88.4, 88.6), lip_seconds=10.0, lip_jac=(0.4, 0.6), mdeq_acc=(88.5, 88.7),
          mdeq_train_acc=None):
    return ([_run("MDEQ-MS", s, a, 40.0, jac=(3.0, 5.0), train_acc=mdeq_train_acc)
             for s, a in enumerate(mdeq_acc)]
            + [_run("LipMDEQ-MS", s, a, lip_seconds, jac=lip_jac, bound=(1.5, 2.5))
               for s, a in enumerate(lip_acc)]
            + [_run("LipMDEQ-cert-MS", s, a - 1, lip_seconds, jac=(0.1, 0.2), bound=(0.5, 0.9))
               for s, a in enumerate(lip_acc)]
            + [_run("pcDEQ-1-MS-Tanh", s, 87.0, 8.0, jac=(1.5, 2.0)) for s in range(2)])


def _source(runs) -> claims.Source:
    return claims.Source("test", Path("/nowhere"), list(runs))


def test_summaries_read_seconds_accuracy_and_jacobian_per_seed():
    sums = {s.method: s for s in multiscale_summaries(_runs())}
    assert list(sums) == ["MDEQ-MS", "LipMDEQ-MS", "LipMDEQ-cert-MS", "pcDEQ-1-MS-Tanh"]
    lip, mdeq = sums["LipMDEQ-MS"], sums["MDEQ-MS"]
    assert lip.accs == [88.4, 88.6] and lip.seconds == [10.0, 10.0]
    assert lip.jac_last == [0.6, 0.6] and max(lip.jac_values()) == 0.6
    assert max(lip.bound_values()) == 2.5 and mdeq.bound_values() == []
    vs = versus_reference(lip, mdeq)
    assert vs.speedup == pytest.approx(4.0)
    assert vs.acc_diff == pytest.approx(-0.1)
    assert vs.acc_low < -0.1 < vs.acc_high and (vs.n, vs.n_ref) == (2, 2)


def test_seconds_per_epoch_is_each_seeds_median_epoch():
    """One epoch paused (or slowed by a job on the same core) must not move s / epoch or
    C10's speed-up: MDEQ's seeds with a 10x epoch still read 40 s, so LipMDEQ is x4.00 (the
    mean would read 160 s and x16.00)."""
    runs = [r for r in _runs() if r.method != "MDEQ-MS"] + [
        _run("MDEQ-MS", s, a, (40.0, 400.0, 40.0), jac=(3.0, 5.0, 5.0))
        for s, a in enumerate((88.5, 88.7))]
    sums = {s.method: s for s in multiscale_summaries(runs)}
    assert sums["MDEQ-MS"].seconds == [40.0, 40.0]
    assert versus_reference(sums["LipMDEQ-MS"], sums["MDEQ-MS"]).speedup == pytest.approx(4.0)
    t = report.make_table("table10_multiscale", runs, "quick")
    rows = {r[0]: dict(zip(t.header, r)) for r in t.rows}
    assert rows["MDEQ-MS"]["s / epoch"] == "40.0"
    assert rows["LipMDEQ-MS"]["Speed-up vs MDEQ"] == "×4.00"


def test_table10_rows_and_columns():
    t = report.make_table("table10_multiscale", _runs(), "quick")
    rows = {r[0]: dict(zip(t.header, r)) for r in t.rows}
    assert rows["MDEQ-MS"]["Speed-up vs MDEQ"] == "(reference)"
    lip = rows["LipMDEQ-MS"]
    assert lip["Speed-up vs MDEQ"] == "×4.00"
    assert lip["‖J_f(z*)‖₂ last (max)"] == "0.600 (0.600)"
    assert lip["Certified bound last (max)"] == "2.500 (2.500)"
    assert lip["Fwd iters (first → last)"] == "10.0 → 12.0"
    assert lip["Final acc. [%]"] == "88.50 ± 0.14"
    assert lip["Δ acc. vs MDEQ [points, 95% CI]"].startswith("-0.10 [")
    assert rows["pcDEQ-1-MS-Tanh"]["epochs ‖J‖₂ ≥ 1"] == "4/4"
    assert rows["MDEQ-MS"]["Certified bound last (max)"] == "—"
    # the paper's tables do not take the multiscale runs
    assert not report.select_runs(_runs(), "table1_mnist")
    assert not report.select_runs(_runs(), "table8_stable_deqs")
    empty = report.make_table("table10_multiscale", [], "quick")
    assert empty.rows[0][0] == "no multiscale runs in this profile"


def test_fig16_draws_one_row_of_four_panels():
    import matplotlib
    matplotlib.use("Agg")
    fig = report.make_figure("fig16_multiscale", _runs(), "quick")
    assert len(fig.axes) == 4
    assert fig.axes[3].get_yscale() == "log"
    assert "0/4 epochs" in report.figure_summary("fig16_multiscale", _runs())  # LipMDEQ-cert


def test_lipschitz_mdeq_claim_holds_when_all_three_parts_do():
    c = claims.claim_lipschitz_mdeq(_source(_runs()))
    assert c.verdict == claims.HOLDS, c.evidence
    assert "×4.00" in c.evidence and "certified" in c.evidence
    assert "each seed's median: 40 / 40 against 10 / 10" in c.evidence  # the speed-up's per-seed data


@pytest.mark.parametrize("change, part", [
    (dict(lip_jac=(0.4, 1.2)), "(a)"),  # realised Lipschitz constant above 1: no contraction
    (dict(lip_seconds=50.0), "(b)"),  # slower than MDEQ
    (dict(lip_acc=(80.0, 81.0)), "(c)"),  # a drop of 8 points is not minor
])
def test_lipschitz_mdeq_claim_fails_where_a_part_is_false(change, part):
    """Negative controls: each part of the rule, made false alone, turns the verdict."""
    c = claims.claim_lipschitz_mdeq(_source(_runs(**change)))
    assert c.verdict == claims.FAILS, c.evidence
    assert f"fails on ({part[1]})" in c.evidence


def test_lipschitz_mdeq_claim_is_undecided_while_the_accuracy_interval_straddles_the_margin():
    """A drop of 1.1 points with seeds 3 points apart: the Welch interval reaches both sides of
    -1; neither a minor cost nor more is shown."""
    c = claims.claim_lipschitz_mdeq(_source(_runs(lip_acc=(86.0, 89.0))))
    assert c.verdict == claims.UNDECIDED, c.evidence
    assert "(c) undecided" in c.evidence and "fails on" not in c.evidence
    # the same interval beside a part that fails: the claim fails
    c = claims.claim_lipschitz_mdeq(_source(_runs(lip_acc=(86.0, 89.0), lip_seconds=50.0)))
    assert c.verdict == claims.FAILS and "fails on (b)" in c.evidence


def test_lipschitz_mdeq_claim_is_not_testable_without_its_evidence():
    runs = _runs()
    c = claims.claim_lipschitz_mdeq(_source([r for r in runs if r.method != "MDEQ-MS"]))
    assert c.verdict == claims.UNTESTABLE and "MDEQ-MS" in c.why
    one_seed = [r for r in runs if r.seed == 0]
    c = claims.claim_lipschitz_mdeq(_source(one_seed))
    assert c.verdict == claims.UNTESTABLE and "two seeds" in c.why
    assert "(a) ‖J_f(z*)‖₂ of LipMDEQ-MS in [0.4, 0.6]" in c.evidence  # measured parts shown
    # an MDEQ at chance accuracy has not learned: no accuracy cost to judge
    c = claims.claim_lipschitz_mdeq(_source(_runs(mdeq_acc=(10.2, 9.8), lip_acc=(10.0, 10.1))))
    assert c.verdict == claims.UNTESTABLE and "not learned" in c.why
    assert "(b) speed-up ×4.00" in c.evidence and "MDEQ-MS 10.0%" in c.evidence
    # training accuracy well above chance with test accuracy at chance: the model learns but
    # its eval-mode network (BatchNorm running statistics) lags; the reason says which
    c = claims.claim_lipschitz_mdeq(_source(_runs(mdeq_acc=(10.2, 9.8), lip_acc=(10.0, 10.1),
                                                  mdeq_train_acc=45.0)))
    assert c.verdict == claims.UNTESTABLE and "not learned" not in c.why
    assert "training accuracy reached 45.0%" in c.why and "eval-mode network" in c.why


def test_paper_claims_leave_the_multiscale_runs_out():
    """C4 and C5 are about the paper's models: a multiscale pcDEQ-2 with 10 iterations (C4
    needs < 8) and growing counts (C5) changes neither; C10 reads the multiscale runs."""
    runs = _runs() + [
        _run("pcDEQ-2-MS-Sigmoid", s, 87.0, 8.0, fwd=(10.0, 30.0), bwd=(10.0, 30.0))
        for s in range(2)]
    out = {c.key: c for c in claims.claims_from_records(_source(runs))}
    assert out["C4"].verdict == claims.UNTESTABLE and "no pcDEQ-2 records" in out["C4"].why
    assert out["C5"].verdict == claims.UNTESTABLE
    assert out["C10"].verdict == claims.HOLDS
    assert all(c.profile == "test" for c in out.values())
