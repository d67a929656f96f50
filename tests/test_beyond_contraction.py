"""Figure 15's study (pcdeq.beyond_contraction): the theorem tested where Banach's theorem
does not apply, and the negative controls that the same code must flag."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from pcdeq import beyond_contraction as bc, claims

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "results" / "quick"
FAST = bc.Settings(scales=(1.0, 10.0), n_starts=6, images_l=3, max_iter=800, power_iters=60)


def _map(W: torch.Tensor, x: torch.Tensor, act: str = "tanh", positive: bool = True) -> bc.ScaledMap:
    return bc.ScaledMap("synthetic", "test", W.double(), x.double(), act, 1.0, positive)


def _nonnegative(n: int, norm: float, seed: int = 0) -> torch.Tensor:
    W = torch.rand(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return W * norm / torch.linalg.matrix_norm(W, 2)


def test_thompson_metric():
    u = torch.tensor([[1.0, 2.0, 4.0]], dtype=torch.float64)
    v = torch.tensor([[2.0, 2.0, 1.0]], dtype=torch.float64)
    assert float(bc.thompson(u, v)) == pytest.approx(math.log(4.0))
    assert float(bc.thompson(u, u)) == 0.0


def test_pcdeq_map_far_from_a_contraction_has_one_limit_and_contracts_in_thompson():
    """||W||_2 = 3 and tanh: Lip(σ)·||W|| = 3 (Banach says nothing), yet one limit from every
    start, and no measured Thompson ratio reaches 1."""
    W = _nonnegative(12, 3.0)
    x = 0.01 * torch.rand(3, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 1e-3
    m = bc.measure(_map(W, x), FAST)
    assert m.l2_bound == pytest.approx(3.0)
    assert m.unique and m.converged == m.starts * m.images == 21
    assert m.iters is not None and m.rate is not None and m.rate < 1
    assert bc.worst_thompson(m) < 1
    # scaled far up the iteration saturates tanh: still one limit, fewer iterations
    m10 = bc.measure(_map(W, x).scaled(10.0), FAST)
    assert m10.unique and m10.iters <= m.iters


def test_jacobian_norm_and_radius_of_a_conv_map_match_the_dense_jacobian():
    torch.manual_seed(0)
    W = torch.rand(2, 2, 3, 3, dtype=torch.float64) * 0.3
    x = torch.rand(1, 2, 4, 4, dtype=torch.float64) + 0.1
    g = _map(W, x, "softsign")
    z = g(torch.zeros_like(x))
    J = torch.autograd.functional.jacobian(g, z).reshape(32, 32)
    norm, rho, v = bc._jacobian_norms(g, z, bc.Settings(power_iters=400))
    assert norm == pytest.approx(float(torch.linalg.matrix_norm(J, 2)), rel=1e-6)
    assert rho == pytest.approx(float(torch.linalg.eigvals(J).abs().max()), rel=2e-2)
    assert g.l2_bound() >= float(torch.linalg.matrix_norm(
        torch.autograd.functional.jacobian(lambda t: torch.nn.functional.conv2d(t, W, padding=1), z)
        .reshape(32, 32), 2)) - 1e-12  # the bound is an upper bound of ||W||_2


def test_controls_are_flagged_and_the_verdict_can_fail():
    """Negative controls: tanh with x = 0 and ρ(W) > 1 has 0 and a positive fixed point; a
    mixed-sign W with a large norm has several. The rule holds only if the controls are
    flagged and pcDEQ is not."""
    W = _nonnegative(12, 3.0)
    zero = bc.run_series(_map(W, torch.zeros(3, 12), positive=False), FAST, "x = 0")
    assert zero.flagged and max(m.max_limits for m in zero.measures) == 2
    M = torch.randn(12, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = torch.randn(3, 12, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    mixed = bc.run_series(_map(M * 3 / torch.linalg.matrix_norm(M, 2), x, positive=False), FAST,
                          "mixed signs")
    assert mixed.flagged
    x_pos = torch.rand(3, 12, generator=torch.Generator().manual_seed(5), dtype=torch.float64) + 0.1
    pc = bc.run_series(_map(W, x_pos), FAST)
    assert not pc.flagged
    assert bc.verdict(bc.Study(FAST, [pc, zero, mixed], ""))[0]
    # a control that nothing flags (a contraction): the test cannot discriminate -> fails
    calm = bc.run_series(_map(_nonnegative(12, 0.5), x_pos, positive=False), FAST, "contraction")
    ok, why = bc.verdict(bc.Study(FAST, [pc, calm], ""))
    assert not ok and "controls not flagged" in why
    # a "pcDEQ" map with several limits fails the rule
    ok, why = bc.verdict(bc.Study(FAST, [bc.Series("fake", "test", "tanh", "", zero.measures), zero], ""))
    assert not ok and "without a unique limit" in why
    assert not bc.verdict(bc.Study(FAST, [pc], ""))[0]  # no control: no verdict for it


def _tampered(src: Path, dst: Path) -> Path:
    """The committed pcDEQ-1-L-Tanh weights with W's direction shifted to mixed signs: the
    same model, outside the theorem (W is no longer nonnegative)."""
    state = torch.load(src, weights_only=True)
    key = next(k for k in state["state_dict"] if k.endswith("deq.weight.v"))
    v = state["state_dict"][key]
    state["state_dict"][key] = v - 0.6 * v.mean(dim=1, keepdim=True) * 2
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, dst)
    return dst


def test_claims_from_models_on_real_weights_can_come_out_either_way(tmp_path):
    """C1 on the committed quick-profile weights (pcDEQ-1-L-Tanh with the DEQ-L-Tanh control)
    holds; the same model with W tampered to mixed signs makes C1 and C7 fail."""
    ds = "mnist5k"
    good = [QUICK / ds / "pcDEQ-1-L-Tanh" / "seed0.pt", QUICK / ds / "DEQ-L-Tanh" / "seed0.pt"]
    src = claims.Source.load("quick", QUICK, [str(p) for p in good])
    ev = claims.model_evidence(src, images_l=4, n_starts=6, scaled=FAST)
    rows = {c.key: c for c in claims.claims_from_models([ev])}
    assert rows["C1"].verdict == claims.HOLDS, rows["C1"].evidence
    assert "scaled W (Figure 15)" in rows["C1"].evidence and "flagged at s" in rows["C1"].evidence
    assert ev.scaled is not None and ev.scaled.controls()

    root = tmp_path / "results" / "quick"
    (root / "claims_inputs").mkdir(parents=True)
    (root / "claims_inputs" / f"{ds}.pt").write_bytes((QUICK / "claims_inputs" / f"{ds}.pt").read_bytes())
    bad = _tampered(good[0], root / ds / "pcDEQ-1-L-Tanh" / "seed0.pt")
    ctl = root / ds / "DEQ-L-Tanh" / "seed0.pt"
    ctl.parent.mkdir(parents=True)
    ctl.write_bytes(good[1].read_bytes())
    ev = claims.model_evidence(claims.Source.load("quick", root, [str(bad), str(ctl)]),
                               images_l=4, n_starts=6, scaled=FAST)
    rows = {c.key: c for c in claims.claims_from_models([ev])}
    assert rows["C1"].verdict == claims.FAILS, rows["C1"].evidence
    assert rows["C7"].verdict == claims.FAILS and "violated by pcDEQ-1-L-Tanh" in rows["C7"].evidence
