"""The stable-DEQ baselines in the harness: names, parameter counts, the Lipschitz bound, the
Jacobian estimator, implicit gradients of every family, and their training records.

monDEQ's own solver (Peaceman-Rachford, FFT inverse) is tested in test_mondeq.py.
"""

import json
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import pcdeq
from pcdeq import ConfigError, build_model, n_params
from pcdeq.hparams import METHOD_FAMILIES, baseline_methods, parse_method
from pcdeq.layers import (DEQLayer, JacobianRegularizer, LipDEQConv2d, LipDEQLinear,
                          LipschitzWeight)
from pcdeq.train import RunConfig, Trainer, train

from conftest import DATA, unrolled_forward


@pytest.mark.parametrize("dataset,method,count", [
    ("mnist", "monDEQ-L", 84_313),  # Winston & Kolter, Table E1 (width 87)
    ("svhn", "monDEQ-SC", 172_218),  # Table E1 (81 channels)
    ("cifar10", "monDEQ-SC", 172_218),
    ("mnist", "monDEQ-SC", 79_500),  # 54 channels (Table E1's 84K is the count for 56)
    ("mnist", "DEQ-L-Tanh", 70_410),  # the pcDEQ L architecture, W free: same count
    ("mnist", "DEQ-JR-SC-Tanh", 69_136),
    ("svhn", "DEQ-MC-Tanh", 130_950),
    ("mnist", "LipDEQ-L-Tanh", 70_330),  # W = V, no weight-norm gains
])
def test_parameter_counts(dataset, method, count):
    assert n_params(build_model(dataset, method)) == count


def test_every_baseline_builds_and_runs():
    for fam in ("mnist", "svhn", "cifar10"):
        info = pcdeq.dataset_info(fam)
        for m in baseline_methods(fam):
            narrow = (4, 4, 4) if parse_method(m).arch == "MC" else (4,)  # fast; counts: above
            model = build_model(fam, m.lower(), channels=narrow)
            with torch.no_grad():
                out = model.eval()(torch.rand(2, info.in_channels, info.size, info.size))
            assert out.shape == (2, 10) and torch.isfinite(out).all(), m
    assert len(baseline_methods("mnist")) == 11 and len(baseline_methods("svhn")) == 6


@pytest.mark.parametrize("name,match", [
    ("monDEQ-L-Tanh", "monDEQ is defined with ReLU only.*valid: monDEQ-\\{L\\|SC\\}"),
    ("monDEQ-MC", "monDEQ has no MC architecture; valid: monDEQ-\\{L\\|SC\\}"),
    ("LipDEQ-L-Swish", "unknown activation 'Swish'; valid: LipDEQ-"),
    ("DEQ-JR-L", "missing the activation"),
    ("FooDEQ-L-Tanh", "unknown method 'FooDEQ-L-Tanh'; valid: pcDEQ-1-.*monDEQ-.*LipDEQ-"),
    ("DEQ-MC-Tanh*", "exist only for pcDEQ MC"),
])
def test_bad_names_are_refused_listing_the_valid_ones(name, match):
    with pytest.raises(ConfigError, match=match):
        parse_method(name)


def test_names_round_trip_and_families_are_registered_once():
    for fam in ("mnist", "svhn", "cifar10"):
        for m in baseline_methods(fam) + pcdeq.paper_methods()[fam]:
            assert parse_method(m.upper() if "*" not in m else m).name == m
    # Table 8's baselines: every single-scale family but pcDEQ's (the multiscale families are
    # set beside the multiscale pcDEQ in their own comparison, issue 17)
    multiscale = {f for f, fam in METHOD_FAMILIES.items() if fam.archs == ("MS",)}
    assert multiscale == {"MDEQ", "LipMDEQ", "LipMDEQ-cert"}
    assert {parse_method(m).family for m in baseline_methods("mnist")} == \
        {"monDEQ", "DEQ", "DEQ-JR", "LipDEQ"} == set(METHOD_FAMILIES) - {"pcDEQ-1", "pcDEQ-2"} - multiscale


@pytest.mark.parametrize("kw,match", [
    (dict(method="LipDEQ-L-Tanh", lip_bound=1.0), "0 < c < 1"),
    (dict(method="LipDEQ-L-Tanh", lip_bound=-0.5), "0 < c < 1"),
    (dict(method="pcDEQ-1-L-ReLU6", lip_bound=0.5), "--lip-bound applies to LipDEQ methods only"),
    (dict(method="DEQ-L-Tanh", jr_weight=1.0), "--jr-weight applies to DEQ-JR methods only"),
    (dict(method="DEQ-JR-L-Tanh", jr_prob=1.5), "--jr-prob must be in \\[0, 1\\]"),
    (dict(method="monDEQ-SC", dataset="synthetic-svhn", epochs=0), "--epochs must be a positive finite number"),
    (dict(method="pcDEQ-1-L-Tanh", solver="newton"),
     "'newton' is not a registered solver; choose one of fixed_point, anderson, broyden"),
    (dict(method="monDEQ-L", solver="anderson"), "monDEQ methods always use their own solver"),
    (dict(method="MDEQ-MS", solver="anderson"), "MDEQ methods always use their own solver \\(broyden\\)"),
])
def test_bad_baseline_overrides_refused_before_work(tmp_path, kw, match):
    cfg = RunConfig(**{**dict(dataset="mnist5k", out=str(tmp_path / "r.json"), data_root=str(DATA)), **kw})
    with pytest.raises(ConfigError, match=match):
        Trainer(cfg)
    assert not (tmp_path / "r.json").exists()


def test_cli_refuses_mondeq_with_tanh_and_lists_names(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pcdeq", "train", "--dataset", "mnist5k", "--method",
                        "monDEQ-L-Tanh", "--out", str(tmp_path / "r.json")], capture_output=True, text=True)
    assert r.returncode == 2 and "monDEQ is defined with ReLU only" in r.stderr
    assert not (tmp_path / "r.json").exists()
    r = subprocess.run([sys.executable, "-m", "pcdeq", "list"], capture_output=True, text=True)
    assert r.returncode == 0
    for m in ("monDEQ-{L|SC}", "DEQ-JR-{L|SC|MC}", "LipDEQ-{L|SC|MC}", "LipDEQ-MC-ReLU", "DEQ-L-ReLU"):
        assert m in r.stdout


# ------------------------------------------------------------------------- LipDEQ: the bound
def _dense(op, W, in_shape):
    """The matrix of the linear map z -> op(W, z) on one input of shape in_shape."""
    n = torch.Size(in_shape).numel()
    eye = torch.eye(n, dtype=W.dtype).view(n, *in_shape)
    return op(W, eye).reshape(n, -1).T


@pytest.mark.parametrize("make", [
    lambda: LipDEQLinear(12, "tanh", bound=0.9),
    lambda: LipDEQConv2d(3, (5, 5), "relu", bound=0.9),
    lambda: LipDEQConv2d(2, (4, 6), "relu", bound=0.5),
])
def test_lipdeq_operator_norm_stays_below_bound_after_every_step(make):
    torch.manual_seed(0)
    layer = make().double()
    w = layer.weight
    in_shape = (w.V.shape[1],) if w.size is None else (w.V.shape[1], *w.size)
    opt = torch.optim.AdamW(layer.parameters(), lr=0.3)  # large steps push the norm far above c
    for _ in range(5):
        u = torch.randn(4, *in_shape, dtype=torch.double)
        loss = -layer(u).pow(2).sum()  # rewards growing W
        opt.zero_grad()
        loss.backward()
        opt.step()
        before = torch.linalg.matrix_norm(_dense(layer.op, w.V.detach(), in_shape), 2)
        layer.project_()
        after = torch.linalg.matrix_norm(_dense(layer.op, w.V.detach(), in_shape), 2)
        assert before > w.bound  # the step did leave the ball ...
        assert after <= w.bound + 1e-6  # ... and the projection brought it back (true norm)
        # rescaled onto the bound: exactly for vectors; for convolutions the bound is the norm
        # on the (H+2) x (W+2) torus, above the true norm, loosest on tiny maps like these
        assert after >= (w.bound - 1e-6 if w.size is None else 0.7 * w.bound)


def test_lipdeq_in_a_model_holds_the_bound_on_every_layer():
    torch.manual_seed(0)
    model = build_model("mnist", "LipDEQ-MC-ReLU", channels=(4, 6, 8))  # small: dense SVDs below
    opt = torch.optim.AdamW(model.parameters(), lr=0.2)
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(model(torch.rand(4, 1, 28, 28)), torch.arange(4))
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.project_()
    for layer, size in zip(model.deq_layers(), (28, 13, 6)):
        w = layer.weight
        assert w.size == (size, size)  # the norm on the layer's own feature maps
        if size <= 13:  # dense check where the matrix is small enough
            M = _dense(layer.op, w.V.detach().double().contiguous(), (w.V.shape[1], size, size))
            assert 0.8 <= torch.linalg.matrix_norm(M, 2) <= 0.9 + 1e-6


def test_lipschitz_bound_refused_outside_0_1():
    with pytest.raises(ConfigError, match="0 < c < 1"):
        LipschitzWeight((3, 3), None, bound=1.0)


# --------------------------------------------------------------------- JR: the estimator
def test_jacobian_estimator_is_unbiased_for_the_dense_frobenius_norm():
    torch.manual_seed(0)
    layer = pcdeq.DEQLinear(6, "tanh").double()
    x = torch.randn(3, 6, dtype=torch.double)
    W = layer.weight().detach()

    def f(z):
        return torch.tanh(z @ W.T + x)

    z = torch.rand(3, 6, dtype=torch.double)
    # dense ||J_f(z)||_F^2 / d per sample, then the batch mean
    dense = torch.stack([torch.autograd.functional.jacobian(lambda zi: torch.tanh(W @ zi + x[i]), z[i])
                         .pow(2).sum() / 6 for i in range(3)]).mean()
    draws = torch.stack([JacobianRegularizer.estimate(f, z, create_graph=False) for _ in range(20_000)])
    se = draws.std() / len(draws) ** 0.5
    assert abs(draws.mean() - dense) < 4 * se and se < 0.01 * dense


def test_jacobian_regularizer_adds_a_differentiable_term_with_probability_p():
    torch.manual_seed(0)
    model = build_model("mnist", "DEQ-JR-L-Tanh", channels=(8,)).train()
    reg = model.deq_layers()[0].regularizer
    assert (reg.weight, reg.prob) == (1.0, 0.4)
    applied = 0
    for _ in range(200):
        model(torch.rand(4, 1, 28, 28))
        aux = model.aux_loss()
        assert model.deq_layers()[0].last_jac_fro2 > 0  # recorded on every step
        if aux is not None:
            applied += 1
            assert aux.requires_grad
    assert 60 <= applied <= 100  # Binomial(200, 0.4): mean 80, sd 7
    model.eval()
    with torch.no_grad():
        model(torch.rand(4, 1, 28, 28))
    assert model.aux_loss() is None  # never at evaluation


# -------------------------------------------------------- implicit == unrolled, every family
@pytest.mark.parametrize("method,channels", [
    ("DEQ-L-Tanh", (12,)), ("DEQ-L-ReLU", (12,)), ("DEQ-JR-L-Tanh", (12,)), ("LipDEQ-L-Tanh", (12,)),
    ("DEQ-SC-Tanh", (3,)), ("LipDEQ-SC-ReLU", (3,)),
])
def test_implicit_gradients_equal_unrolled_autograd(method, channels, monkeypatch):
    torch.manual_seed(0)
    model = build_model("mnist", method, channels=channels, tol=1e-13, max_iter=1000).double().eval()
    with torch.no_grad():  # a strong W (but one the plain iteration still solves: ||W|| < 1)
        for layer in model.deq_layers():
            W = layer.weight()
            s = torch.linalg.matrix_norm(W.flatten(1), 2)
            target = 0.9 if layer.activation == "relu" else 0.95
            getattr(layer.weight, "g", getattr(layer.weight, "V", None)).mul_(target / s)
    x = torch.rand(4, 1, 28, 28, dtype=torch.double)
    y = torch.arange(4)

    def grads():
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        return {k: p.grad.clone() for k, p in model.named_parameters()}

    implicit = grads()
    assert all(l.last_bwd_iters > 2 for l in model.deq_layers())
    monkeypatch.setattr(DEQLayer, "forward", unrolled_forward)
    unrolled = grads()
    for k in implicit:
        torch.testing.assert_close(implicit[k], unrolled[k], rtol=1e-7, atol=1e-10, msg=k)


# ---------------------------------------------------------------- records of every family
@pytest.mark.parametrize("method,extra", [
    ("DEQ-JR-L-Tanh", "jac_fro2"),
    ("LipDEQ-SC-ReLU", None),
    ("monDEQ-L", "alpha"),
])
def test_baseline_runs_write_the_common_record(tmp_path, method, extra):
    cfg = RunConfig(dataset="mnist5k", method=method, seed=0, out=str(tmp_path / "r.json"), epochs=2,
                    train_limit=256 if "SC" not in method else 64, test_limit=64, data_root=str(DATA),
                    log=False, progress=False)
    rec = train(cfg).to_json()
    assert rec["status"] == "complete" and rec == json.loads((tmp_path / "r.json").read_text())
    for e in rec["epochs"]:
        assert e["fwd_iters"] >= 1 and e["bwd_iters"] >= 1 and e["test_fwd_iters"] >= 1
        if extra:
            assert e[extra] is not None
    hp = rec["hparams"]
    if method.startswith("LipDEQ"):
        assert hp["lip_bound"] == 0.9 and rec["epochs"][-1]["sigma_max"] <= 0.9 + 1e-6
    if method.startswith("monDEQ"):
        assert (hp["optimizer"], hp["batch_size"], hp["tol"], hp["max_iter"]) == ("adam", 128, 1e-2, 300)
        assert rec["solver"] == "peaceman_rachford"
        assert 1.0 >= rec["epochs"][-1]["alpha"][0] > 0
    if method.startswith("DEQ-JR"):
        assert (hp["jr_weight"], hp["jr_prob"]) == (1.0, 0.4)


def test_table8_describes_the_families_of_its_rows_only():
    """The committed quick records: every baseline family is described, the multiscale ones
    (not in the table) are not; with the DEQ-JR rows dropped, DEQ-JR leaves the note too."""
    from pcdeq.report import load_runs
    from pcdeq.report.tables import stable_deq_table
    runs = [r for r in load_runs(Path(__file__).resolve().parents[1] / "results" / "quick")
            if r.dataset == "mnist5k"]
    note = next(n for n in stable_deq_table(runs, "quick").notes if n.startswith("Families: "))
    assert all(f"{f}: " in note for f in ("monDEQ", "DEQ", "DEQ-JR", "LipDEQ"))
    assert "MDEQ" not in note
    no_jr = [r for r in runs if parse_method(r.method).family != "DEQ-JR"]
    note = next(n for n in stable_deq_table(no_jr, "quick").notes if n.startswith("Families: "))
    assert "DEQ-JR: " not in note and "LipDEQ: " in note


def test_table8_seconds_per_epoch_is_robust_to_one_paused_epoch():
    """s / epoch is each run's median epoch: LipDEQ-MC-ReLU seed 0 (fashion) had its first
    epoch paused for 36 min against about 2 min for the others; its mean would be 1.4x the
    median. The column prints the median, and a slower second run moves the mean over runs."""
    from pcdeq.report import load_run
    from pcdeq.report.tables import stable_deq_table
    path = (Path(__file__).resolve().parents[1] / "results" / "fashion" / "fashion_mnist"
            / "LipDEQ-MC-ReLU" / "seed0.json")
    run = load_run(path)
    secs = [e.seconds for e in run.epochs]
    assert max(secs) > 10 * statistics.median(secs)  # the paused epoch is in the record

    def printed(runs) -> float:
        table = stable_deq_table(runs, "fashion")
        row = next(r for r in table.rows if r[0] == "LipDEQ-MC-ReLU")
        return float(row[table.header.index("s / epoch")])

    assert printed([run]) == round(statistics.median(secs), 1) != round(statistics.fmean(secs), 1)
    slow = replace(run, seed=1, epochs=[replace(e, seconds=3 * e.seconds) for e in run.epochs])
    assert printed([run, slow]) == round(2 * statistics.median(secs), 1)


@pytest.mark.parametrize("solver", ["anderson", "broyden"])
def test_solver_flag_trains_a_pcdeq_model_with_an_accelerated_solver(tmp_path, solver):
    """--solver reaches every layer and the record; a checkpoint of another solver's run is
    not resumed (the solver is part of a run's identity)."""
    from pcdeq.train import train
    cfg = RunConfig(dataset="mnist5k", method="pcDEQ-1-L-Tanh", out=str(tmp_path / "r.json"),
                    data_root=str(DATA), epochs=1, train_limit=128, test_limit=64, solver=solver,
                    log=False, progress=False)
    tr = Trainer(cfg)
    assert {l.solver for l in tr.model.deq_layers()} == {solver}
    rec = train(cfg)
    assert rec.solver == solver and rec.epochs[0].fwd_iters >= 1
    assert "solver" in rec.identity() and rec.identity()["solver"] == solver


def test_cli_answers_lip_mode_with_the_method_names(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pcdeq", "train", "--dataset", "mnist5k", "--method",
                        "LipMDEQ-MS", "--lip-mode", "certified", "--out", str(tmp_path / "r.json")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "LipMDEQ-cert-MS (certified)" in r.stderr
    assert not (tmp_path / "r.json").exists()
