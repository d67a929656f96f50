"""The claims checks (pcdeq.claims): they must tell a claim that holds from one that does not,
and say "not testable here" with what is missing rather than fail or skip."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
import torch

from pcdeq import build_model, claims
from pcdeq.layers import DEQLinear, PcDEQLinear
from pcdeq.record import EpochRecord
from pcdeq.report import Run


def _problem(layer, x: torch.Tensor) -> claims.LayerProblem:
    return claims.LayerProblem("layer 1", layer, x.double())


def _pcdeq_layer(norm: float = 3.0) -> PcDEQLinear:
    """A pcDEQ-1 tanh layer whose nonnegative W has spectral norm `norm` (no contraction)."""
    layer = PcDEQLinear(16, variant=1, activation="tanh")
    with torch.no_grad():
        W = torch.rand(16, 16)
        layer.weight.v.copy_(W)
        layer.weight.g.copy_(torch.linalg.vector_norm(W, dim=1, keepdim=True))  # W itself
        layer.weight.g.mul_(norm / torch.linalg.matrix_norm(layer.effective_weight(), 2))
    return layer


def test_uniqueness_and_rate_on_a_pcdeq_layer_with_norm_above_one():
    layer = _pcdeq_layer(3.0)
    assert float(torch.linalg.matrix_norm(layer.effective_weight().detach(), 2)) == pytest.approx(3.0, rel=1e-5)
    x = torch.nn.functional.softplus(torch.randn(8, 16), beta=5)  # pcDEQ-1 input: x > 0
    p = _problem(layer, x)
    u = claims.uniqueness(p, "pcDEQ-1-L-Tanh", n_starts=20)
    assert u.converged == u.starts == 21
    assert u.max_distance <= claims.THRESHOLDS["same_fixed_point"]
    r = claims.convergence_rate(p, "pcDEQ-1-L-Tanh")
    assert r.converged and 0 <= r.rate < 1 and r.worst_ratio < 1 and r.iters < 100


def test_uniqueness_detects_several_fixed_points():
    """z = tanh(3z) has the fixed points 0 and ±0.995: from z = 0 and from positive starts the
    iteration ends at different limits, and the check says so."""
    layer = DEQLinear(4, activation="tanh")
    with torch.no_grad():
        layer.weight.v.copy_(torch.eye(4))
        layer.weight.g.fill_(3.0)
    u = claims.uniqueness(_problem(layer, torch.zeros(2, 4)), "DEQ-L-Tanh", n_starts=5)
    assert u.max_distance > 0.9


def test_rate_and_c2_fail_on_an_iteration_that_does_not_converge():
    """The negative control of C2: z = tanh(-3z + 0.5) has an unstable fixed point (slope
    about -2.9 there) and the iteration settles on a 2-cycle: not converged, one-step ratios
    at or above 1, and C2 computed on such a rate does not hold (beside a converging one)."""
    layer = DEQLinear(4, activation="tanh")
    with torch.no_grad():
        layer.weight.v.copy_(-torch.eye(4))
        layer.weight.g.fill_(3.0)
    bad = claims.convergence_rate(_problem(layer, torch.full((2, 4), 0.5)), "pcDEQ-1-L-Tanh",
                                  max_iter=300)
    assert not bad.converged and bad.worst_ratio >= 1.0, bad
    good = _pcdeq_layer(3.0)
    x = torch.nn.functional.softplus(torch.randn(8, 16, generator=torch.Generator().manual_seed(0)), beta=5)
    ok = claims.convergence_rate(_problem(good, x), "pcDEQ-1-L-Tanh")
    assert ok.converged and ok.worst_ratio < 1
    src = _source([_run("pcDEQ-1-L-Tanh", 0)])
    u = claims.Uniqueness("pcDEQ-1-L-Tanh", "layer 1", 21, 21, 0.0, 2.0)
    inv = claims.Invariants("pcDEQ-1-L-Tanh", 1, "tanh", 0.0, 0.1, True, True, False)

    def c2(rates):
        ev = claims.ModelEvidence(src, models=["pcDEQ-1-L-Tanh seed0"], uniqueness=[u],
                                  rates=rates, invariants=[inv])
        return next(c for c in claims.claims_from_models([ev]) if c.key == "C2")
    assert c2([ok]).verdict == claims.HOLDS
    c = c2([ok, bad])
    assert c.verdict == claims.FAILS and "ρ = " in c.decisive, c.decisive


def test_invariants_catch_a_negative_weight_and_a_bad_pairing():
    model = build_model("mnist5k", "pcDEQ-1-L-Tanh")
    x = torch.rand(4, 1, 28, 28)
    inv = claims.invariants(model, claims.layer_problems(model, x))
    assert inv.min_w >= 0 and inv.min_x > 0 and inv.pairing_ok and inv.concave_ok
    with torch.no_grad():
        model.deq_layers()[0].weight.v[0, 0] = -1.0
    inv = claims.invariants(model, claims.layer_problems(model, x))
    assert inv.min_w < 0
    deq = build_model("mnist5k", "DEQ-L-Tanh")
    inv = claims.invariants(deq, claims.layer_problems(deq, x))
    assert not inv.pairing_ok and inv.variant is None


def _run(method: str, seed: int, sigma=None, fwd=(5.0, 5.0), acc=90.0, n_params=70410,
         **per_epoch) -> Run:
    """A record with these per-epoch values (``per_epoch``: other EpochRecord fields, one value
    per epoch; fields not given are absent, as in a record made before they were recorded)."""
    epochs = tuple(EpochRecord.from_json(
        {"epoch": i + 1, "train_loss": 0.1, "train_acc": acc, "test_loss": 0.1, "test_acc": acc,
         "fwd_iters": f, "bwd_iters": f, "test_fwd_iters": f,
         "sigma_max": None if sigma is None else sigma[i],
         **{k: v[i] for k, v in per_epoch.items()}}, f"epochs[{i}]")
        for i, f in enumerate(fwd))
    data = {"family": "mnist", "synthetic": False, "description": "test data", "n_train": 100,
            "n_test": 10}
    return Run("complete", "mnist5k", method, seed, data, {"epochs": len(epochs)}, n_params,
               epochs, path=f"/x/{method}/seed{seed}.json")


def _source(runs) -> claims.Source:
    return claims.Source("test", Path("/nowhere"), list(runs))


def test_sigma_max_claim_is_computed_from_the_records():
    def runs(relu6, others):
        return ([_run("pcDEQ-1-L-ReLU6", 0, relu6)]
                + [_run(m, 0, others) for m in ("pcDEQ-1-L-Tanh", "pcDEQ-1-L-Softsign",
                                                 "pcDEQ-2-L-Sigmoid")])
    assert claims.claim_sigma_max(_source(runs([0.5, 0.9], [1.2, 1.1]))).verdict == claims.HOLDS
    c = claims.claim_sigma_max(_source(runs([0.5, 1.01], [1.2, 1.1])))  # ReLU6 above 1 once
    assert c.verdict == claims.FAILS and "ReLU6: 50%" in c.evidence
    c = claims.claim_sigma_max(_source(runs([0.5, 0.9], [0.9, 1.1])))  # half the epochs: not "most"
    assert c.verdict == claims.FAILS
    c = claims.claim_sigma_max(_source(runs([0.5, 0.9], [1.2, 1.1])[:2]))
    assert c.verdict == claims.UNTESTABLE and "Sigmoid" in c.why and "Softsign" in c.why


def test_iteration_claims_use_the_thresholds():
    pc = [_run("pcDEQ-2-L-Sigmoid", 0, fwd=(4.0, 7.9)), _run("pcDEQ-1-L-Tanh", 0, fwd=(5.0, 6.0))]
    assert claims.claim_sigmoid_iters(_source(pc)).verdict == claims.HOLDS
    assert claims.claim_sigmoid_iters(
        _source([_run("pcDEQ-2-L-Sigmoid", 0, fwd=(4.0, 8.0))])).verdict == claims.FAILS


def _curve(method: str, seed: int, iters, decay: int = 30) -> Run:
    r = _run(method, seed, fwd=tuple(iters))
    r.hparams["lr_decay_epoch"] = decay
    return r


def _flat(n=40, level=7.0, seed=0, wiggle=0.0):
    return [level + wiggle * ((seed + i) % 3 - 1) for i in range(n)]


def _rising(n=40, start=10.0, end=30.0):
    return [start + (end - start) * i / (n - 1) for i in range(n)]


def test_iteration_growth_is_judged_per_window_and_seed():
    """Windows 1→10, 10→30 (the decay), 30→40; per-seed ratios with an interval. A pcDEQ
    method flat in every window and DEQ / monDEQ growing holds; growth of pcDEQ after the
    decay alone fails (one last/first ratio would mix it with the rest); a flat baseline
    fails the claim's contrast; no baseline: not testable."""
    pc = [_curve("pcDEQ-2-L-Sigmoid", s, _flat(seed=s, wiggle=0.05)) for s in range(3)]
    deq = [_curve("DEQ-L-Tanh", s, _rising()) for s in range(3)]
    mon = [_curve("monDEQ-L", s, _rising(start=5.0, end=7.5)) for s in range(3)]
    c = claims.claim_iterations_flat(_source(pc + deq + mon))
    assert c.verdict == claims.HOLDS, c.evidence
    assert "start 1→10" in c.evidence and "trend 10→30" in c.evidence and "after decay 30→40" in c.evidence
    late = [_curve("pcDEQ-1-L-ReLU6", s, [7.0] * 30 + [7.0 + 0.5 * i for i in range(1, 11)])
            for s in range(3)]
    c = claims.claim_iterations_flat(_source(pc + late + deq + mon))
    assert c.verdict == claims.FAILS and "pcDEQ-1-L-ReLU6" in c.evidence
    assert "(grows: after decay)" in c.evidence.split("pcDEQ-1-L-ReLU6")[1].split(";")[0]
    flat_mon = [_curve("monDEQ-L", s, _flat(level=7.0)) for s in range(3)]
    c = claims.claim_iterations_flat(_source(pc + deq + flat_mon))
    assert c.verdict == claims.FAILS and "(never grows)" in c.evidence
    c = claims.claim_iterations_flat(_source(pc))
    assert c.verdict == claims.UNTESTABLE and "DEQ / monDEQ" in c.why
    # a one-epoch run has no trend: left out, named
    c = claims.claim_iterations_flat(_source(pc + deq + mon + [_run("pcDEQ-1-SC-Tanh", 0, fwd=(9.0,))]))
    assert "left out, one epoch: pcDEQ-1-SC-Tanh" in c.evidence


def test_iteration_growth_has_a_third_outcome_between_flat_and_grows():
    """An interval that straddles 1.1 neither shows nor refutes "does not grow": the claim is
    undecided, not failed (the printed rule says so); one seed gives no interval: undecided
    too, for pcDEQ and for a baseline alike."""
    flat = [_curve("pcDEQ-2-L-Sigmoid", s, _flat(seed=s, wiggle=0.05)) for s in range(3)]
    deq = [_curve("DEQ-L-Tanh", s, _rising()) for s in range(3)]
    mon = [_curve("monDEQ-L", s, _rising(start=5.0, end=7.5)) for s in range(3)]
    # start window ratios 1.0, 1.2, 1.1 per seed: geometric mean 1.10, interval around it
    wide = [_curve("pcDEQ-1-L-Tanh", s, [10.0] * 9 + [10.0 * r] + [10.0 * r] * 30)
            for s, r in enumerate((1.0, 1.2, 1.1))]
    start = next(x for x in claims.growth(wide) if x.window == "start")
    assert start.lo < 1.1 < start.hi and start.state(1.1) == "undecided"
    c = claims.claim_iterations_flat(_source(flat + wide + deq + mon))
    assert c.verdict == claims.UNDECIDED, c.evidence
    assert "(undecided: start)" in c.evidence and "1 undecided of" in c.decisive
    late = [_curve("pcDEQ-1-L-ReLU6", s, [7.0] * 30 + [7.0 + 0.5 * i for i in range(1, 11)])
            for s in range(3)]
    assert claims.claim_iterations_flat(_source(flat + wide + late + deq + mon)).verdict == claims.FAILS
    one = [_curve("pcDEQ-1-L-Softsign", 0, _flat())]
    c = claims.claim_iterations_flat(_source(flat + one + deq + mon))
    assert c.verdict == claims.UNDECIDED and "(undecided: start, trend, after decay)" in c.evidence
    c = claims.claim_iterations_flat(_source(flat + deq[:1] + mon))
    assert c.verdict == claims.UNDECIDED and "DEQ-L-Tanh" in c.evidence and "(undecided)" in c.evidence


def test_growth_interval_is_over_seeds_of_the_log_ratio():
    runs = [_curve("pcDEQ-1-L-Tanh", s, [10.0] * 9 + [10.0 * (1.2 + 0.1 * s)] + [12.0] * 30)
            for s in range(3)]
    start = next(x for x in claims.growth(runs) if x.window == "start")
    assert start.ratios == pytest.approx((1.2, 1.3, 1.4))
    assert start.mean == pytest.approx((1.2 * 1.3 * 1.4) ** (1 / 3))
    # the t interval of the mean log ratio (2 dof: t_0.975 in closed form), exponentiated;
    # an interval of the raw ratios or another quantile would miss these
    logs = [math.log(r) for r in (1.2, 1.3, 1.4)]
    t975 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # Student's t, 2 dof: (2p-1) / sqrt(2p(1-p))
    h = t975 * statistics.stdev(logs) / math.sqrt(3)
    assert (start.lo, start.hi) == pytest.approx(
        (math.exp(statistics.fmean(logs) - h), math.exp(statistics.fmean(logs) + h)), rel=1e-9)
    assert f"(n = 3, geometric sd ×{math.exp(statistics.stdev(logs)):.2f})" in start.text()


def test_sigmoid_iters_is_the_max_over_seeds_epochs_and_counts():
    """The largest count of any seed decides, wherever it is (the last seed used to win): seed 0
    peaks at 8.2 in the backward count at epoch 1, seed 1 stays below 7."""
    def run(seed, fwd, bwd, test):
        return _run("pcDEQ-2-L-Sigmoid", seed, fwd=fwd, bwd_iters=bwd, test_fwd_iters=test)
    runs = [run(0, (5.0, 6.0), (8.2, 6.5), (5.5, 6.1)), run(1, (5.0, 6.9), (5.0, 6.0), (5.2, 6.8))]
    c = claims.claim_sigmoid_iters(_source(runs))
    assert c.verdict == claims.FAILS
    assert "max 8.20 (seed 0, epoch 1, bwd_iters)" in c.evidence
    c = claims.claim_sigmoid_iters(_source(runs[1:]))
    assert c.verdict == claims.HOLDS and "max 6.90 (seed 1, epoch 2, fwd_iters)" in c.evidence


def test_accuracy_claim_needs_fewer_parameters_and_a_close_mean():
    mon = [_run("monDEQ-L", s, acc=a, n_params=84313) for s, a in ((0, 93.0), (1, 93.1))]
    good = [_run("pcDEQ-1-L-ReLU6", s, acc=a) for s, a in ((0, 94.0), (1, 94.1))]
    bad = [_run("pcDEQ-1-L-ReLU6", s, acc=a) for s, a in ((0, 90.0), (1, 90.2))]
    c = claims.claim_accuracy(_source(good + mon))
    assert c.verdict == claims.HOLDS and "1 of 1 pcDEQ methods" in c.evidence
    assert claims.claim_accuracy(_source(bad + mon)).verdict == claims.FAILS
    assert claims.claim_accuracy(_source(good)).verdict == claims.UNTESTABLE


def test_accuracy_claim_is_per_method_with_a_welch_interval():
    """No best-of-four: one method below monDEQ fails the claim although another beats it; a
    pcDEQ model with more parameters fails; an interval that straddles -margin (a noisy tie)
    is neither a match nor a shortfall: undecided, unless another method is surely worse; a
    method too short of seeds to compare leaves the claim undecided, never shown; one seed of
    monDEQ is not testable, not a verdict."""
    mon = [_run("monDEQ-L", s, acc=a, n_params=84313) for s, a in enumerate((93.0, 93.2, 93.1))]
    best = [_run("pcDEQ-1-L-ReLU6", s, acc=a) for s, a in enumerate((94.0, 94.1, 94.2))]
    worse = [_run("pcDEQ-1-L-Tanh", s, acc=a) for s, a in enumerate((92.0, 92.1, 92.2))]
    c = claims.claim_accuracy(_source(best + worse + mon))
    assert c.verdict == claims.FAILS and "1 of 2 pcDEQ methods" in c.evidence
    d, lo, hi, dof = claims.welch_interval([94.0, 94.1, 94.2], [93.0, 93.2, 93.1])
    assert d == pytest.approx(1.0) and lo < d < hi and dof == pytest.approx(4.0)
    assert f"{lo:+.2f}" in c.evidence
    assert "(n = 3 vs 3, sd 0.10 vs 0.10)" in c.evidence  # n, sample std and interval, each side
    big = [_run("pcDEQ-1-L-ReLU6", s, acc=a, n_params=90000) for s, a in enumerate((94.0, 94.1, 94.2))]
    assert claims.claim_accuracy(_source(big + mon)).verdict == claims.FAILS
    noisy = [_run("pcDEQ-1-L-ReLU6", s, acc=a) for s, a in enumerate((92.0, 94.5, 93.4))]
    lo, hi = claims.welch_interval([92.0, 94.5, 93.4], [93.0, 93.2, 93.1])[1:3]
    assert lo < -0.1 < hi
    c = claims.claim_accuracy(_source(noisy + mon))
    assert c.verdict == claims.UNDECIDED and "params: undecided" in c.evidence, c.evidence
    assert claims.claim_accuracy(_source(noisy + worse + mon)).verdict == claims.FAILS
    short = [_run("pcDEQ-1-L-Tanh", 0, acc=95.0)]  # one seed: no interval for it
    c = claims.claim_accuracy(_source(best + short + mon))
    assert c.verdict == claims.UNDECIDED and "not compared: pcDEQ-1-L-Tanh" in c.evidence
    c = claims.claim_accuracy(_source(best + mon[:1]))
    assert c.verdict == claims.UNTESTABLE and "two seeds on each side" in c.why


def test_missing_weights_give_not_testable_naming_what_is_missing(tmp_path):
    ev = claims.model_evidence(claims.Source.load("fashion", tmp_path / "results" / "fashion"))
    rows = claims.claims_from_models([ev])
    assert [c.key for c in rows] == ["C1", "C2", "C7"]
    assert all(c.verdict == claims.UNTESTABLE and "no pcDEQ weights" in c.why for c in rows)
    table = claims.claims_table(rows + claims.NOT_HERE, [ev.source])
    md = table.to_markdown()
    assert "not testable here" in md and md.count("no pcDEQ weights") == 3




def test_sigma_max_claim_is_per_seed_and_per_activation():
    """Each activation its own σ series; one tanh seed below 1 most of the time fails the claim
    although the pooled fraction of (seed, epoch) would be above one half."""
    series = {"pcDEQ-1-L-ReLU6": ([0.5, 0.6, 0.7, 0.8], [0.4, 0.5, 0.6, 0.9]),
              "pcDEQ-1-L-Tanh": ([1.1, 1.2, 1.3, 1.4], [0.9, 0.9, 1.1, 1.2]),
              "pcDEQ-1-L-Softsign": ([0.9, 1.1, 1.2, 1.3], [1.2, 1.3, 1.4, 1.5]),
              "pcDEQ-2-L-Sigmoid": ([1.5, 1.6, 1.7, 1.8], [0.9, 1.6, 1.7, 1.8])}
    runs = [_run(m, s, sig, fwd=(5.0,) * 4) for m, (a, b) in series.items() for s, sig in enumerate((a, b))]
    c = claims.claim_sigma_max(_source(runs))
    assert c.verdict == claims.FAILS  # tanh seed 1: 2 of 4 epochs, not "most"
    assert "Tanh: 100%, 50% of epochs above 1 (n = 2 seeds; fails)" in c.evidence
    assert "Softsign: 75%, 100%" in c.evidence and "Sigmoid: 100%, 75%" in c.evidence
    series["pcDEQ-1-L-Tanh"] = ([1.1, 1.2, 1.3, 1.4], [0.9, 1.05, 1.1, 1.2])
    runs = [_run(m, s, sig, fwd=(5.0,) * 4) for m, (a, b) in series.items() for s, sig in enumerate((a, b))]
    assert claims.claim_sigma_max(_source(runs)).verdict == claims.HOLDS


def test_invariants_during_training_from_the_records():
    """Every epoch's min W / min x: a pcDEQ-1 epoch with min x = 0 (float32 underflow or a bug)
    breaks x > 0 and is named; pcDEQ-2 allows x = 0; records without the fields say so."""
    def run(method, seed, w, x):
        return _run(method, seed, fwd=(5.0,) * len(w), min_weight=w, min_input=x)
    good = [run("pcDEQ-1-L-Tanh", 0, [0.0, 0.0], [1e-3, 2e-5]), run("pcDEQ-2-L-Sigmoid", 0, [0.0, 0.0], [0.0, 0.0])]
    text, bad = claims.training_invariants(good)
    assert not bad and "every epoch of 2 of 2 pcDEQ runs" in text and "min x (pcDEQ-1) = 2e-05" in text
    text, bad = claims.training_invariants(good + [run("pcDEQ-1-L-ReLU6", 1, [0.0, 0.0], [1e-4, 0.0])])
    assert bad == ["pcDEQ-1-L-ReLU6 seed 1 epoch 2"] and "broken by pcDEQ-1-L-ReLU6 seed 1 epoch 2" in text
    text, bad = claims.training_invariants(good + [run("pcDEQ-2-L-Sigmoid", 1, [0.0, -1e-3], [0.0, 0.0])])
    assert bad == ["pcDEQ-2-L-Sigmoid seed 1 epoch 2"]
    text, bad = claims.training_invariants([_run("pcDEQ-1-L-Tanh", 0)])
    assert not bad and "not recorded" in text


def test_summary_table_has_one_line_per_claim_with_each_profiles_verdict_and_number():
    a = claims.Source("quick", Path("/nowhere"), [_run("pcDEQ-2-L-Sigmoid", 0, fwd=(4.0, 7.5))])
    b = claims.Source("fashion", Path("/nowhere"), [_run("pcDEQ-2-L-Sigmoid", 0, fwd=(4.0, 9.0))])
    rows = claims.claims_from_records(a) + claims.claims_from_records(b) + claims.NOT_HERE
    table = claims.claims_table(rows, [a, b])
    s = table.summary
    assert s.header[-2:] == ["quick profile", "fashion profile"]
    assert [r[0] for r in s.rows] == ["C3", "C4", "C5", "C6", "C8", "C9", "C10"]
    c4 = next(r for r in s.rows if r[0] == "C4")
    assert c4[3] == "**holds** (max 7.50 iterations (needs < 8))"
    assert c4[4] == "**does not hold** (max 9.00 iterations (needs < 8))"
    c8 = next(r for r in s.rows if r[0] == "C8")
    assert c8[3] == c8[4] == "**not testable here**"  # C8 belongs to no profile: shown in each
    md = table.to_markdown()
    assert md.index("at a glance") < md.index("The paper's claims, checked")
