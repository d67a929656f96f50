"""MDEQ (pcdeq.multiscale) as the spec describes its reference code: exact parameter counts of
the spec's reduced configuration and of the reference's CIFAR-10 TINY, the state layout, the
variational dropout, pretraining, and the implicit gradient."""

from __future__ import annotations

import math

import pytest
import torch

from pcdeq.multiscale import CIFAR_TINY, MDEQ, MNIST_MS, MDEQConfig, WNConv2d


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_are_the_specs():
    """../shared/spec/multiscale.md section 3 (and TINY's 158,890 from section 1.6)."""
    m = MDEQ(MNIST_MS)
    assert _count(m) == 131_634
    parts = {"stem": _count(m.stem), "stage0": _count(m.stage0),
             "blocks": _count(m.f.blocks), "fusion": _count(m.f.fuse),
             "post-fusion": _count(m.f.post_conv) + _count(m.f.post_gn),
             "head": _count(m.incre) + _count(m.downsamp) + _count(m.final),
             "classifier": _count(m.classifier)}
    assert parts == {"stem": 680, "stage0": 80, "blocks": 81_600, "fusion": 7_824,
                     "post-fusion": 944, "head": 39_216, "classifier": 1_290}
    assert _count(MDEQ(MDEQConfig(wnorm=False))) == 131_298
    assert _count(MDEQ(MDEQConfig(channels=(8, 8, 16)))) == 79_842
    assert _count(MDEQ(CIFAR_TINY)) == 158_890
    assert isinstance(MDEQ(CIFAR_TINY).stage0, torch.nn.Identity)  # 2 branches: no stage0


def test_state_layout_round_trips():
    m = MDEQ(MNIST_MS)
    x0 = torch.randn(2, 8, 28, 28)
    shapes = m.shapes(x0)
    assert shapes == [(8, 28, 28), (16, 14, 14), (24, 7, 7)]
    z = [torch.randn(2, *s) for s in shapes]
    v = m.to_vec(z)
    assert v.shape == (2, 10_584)  # 8 * 784 + 16 * 196 + 24 * 49, highest resolution first
    assert all(torch.equal(a, b) for a, b in zip(m.to_list(v, shapes), z))


def test_weight_norm_starts_at_v_and_follows_g():
    conv = WNConv2d(4, 6, 3)
    conv.reset()
    assert torch.allclose(conv.weight, conv.v, atol=1e-6)
    with torch.no_grad():
        conv.g.mul_(2.0)
    conv.reset()
    assert torch.allclose(conv.weight, 2 * conv.v, atol=1e-6)


def test_variational_dropout_is_one_channel_mask_per_forward_call():
    torch.manual_seed(0)
    m = MDEQ(MDEQConfig(dropout=0.5)).train()
    x0 = m.stage0(m.stem(torch.randn(3, 1, 28, 28)))
    m.equilibrium(x0)
    mask = m.f.blocks[0].drop.mask
    assert mask.shape == (3, 8, 1, 1) and set(mask.unique().tolist()) <= {0.0, 2.0}
    z = [torch.randn(3, *s) for s in m.shapes(x0)]
    x = [x0] + [torch.zeros(3, *s) for s in m.shapes(x0)[1:]]
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(m.f(z, x), m.f(z, x)))  # the same mask
    m.eval()
    m.equilibrium(x0)
    assert m.f.blocks[0].drop.mask is None


def test_pretraining_unrolls_then_the_solver_takes_over():
    torch.manual_seed(0)
    m = MDEQ(MDEQConfig(pretrain_steps=5, num_layers=3)).train()
    x = torch.randn(2, 1, 28, 28)
    m.train_step = 0
    m(x).sum().backward()
    # plain backprop, no adjoint solve (recorded as 0 backward iterations)
    assert m.last_fwd_stats.iters == 3 and [b.iters for b in m._bwd_stats] == [0]
    assert all(p.grad is not None for p in m.parameters())
    m.train_step = 5
    m(x).sum().backward()
    assert m.last_fwd_stats.iters >= 2 and len(m._bwd_stats) == 1  # Broyden and its adjoint
    assert m.last_bwd_stats.iters >= 1
    # the trainer's rule: every step of the first cfg.pretrain_epochs epochs is unrolled
    m.cfg = MDEQConfig(pretrain_steps=5, num_layers=3, pretrain_epochs=1)
    m.at_step_(1, 100)
    m(x)
    assert m.last_fwd_stats.iters == 3 and math.isnan(m.last_fwd_stats.residual)
    m.at_step_(2, 101)
    m(x)
    assert not math.isnan(m.last_fwd_stats.residual)  # the solver's residual


def test_implicit_gradient_equals_backprop_through_the_converged_iteration():
    """With the map made a contraction (no dropout, float64; every GroupNorm of f with gain
    0.1 and a random bias, so that its output is bias-dominated: GroupNorm is scale-invariant,
    so small gains alone do not make one), the gradient of the implicit backward pass equals
    the gradient through 60 unrolled steps."""
    torch.manual_seed(0)
    cfg = MDEQConfig(channels=(4, 8), head_channels=(2, 4), final_channels=16, groups=2,
                     dropout=0.0, post_gn_affine=True, tol=1e-10, f_thres=60, b_thres=60)
    m = MDEQ(cfg).double().eval()
    with torch.no_grad():
        for gn in m.f.modules():
            if isinstance(gn, torch.nn.GroupNorm) and gn.affine:
                gn.weight.mul_(0.1)
                gn.bias.uniform_(-1, 1)
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    m.train_step = -1
    m(x).sum().backward()
    implicit = [p.grad.clone() for p in m.parameters()]
    assert m.last_fwd_stats.residual < 1e-8
    m.zero_grad()
    m.cfg = MDEQConfig(**{**cfg.__dict__, "pretrain_steps": 1, "num_layers": 60})
    m.train_step = 0
    m(x).sum().backward()
    for a, (n, p) in zip(implicit, m.named_parameters()):
        assert torch.allclose(a, p.grad, rtol=1e-5, atol=1e-9), n


@pytest.mark.parametrize("solver", ["broyden", "anderson"])
def test_both_reference_solvers_run_the_model(solver):
    torch.manual_seed(0)
    m = MDEQ(MDEQConfig(solver=solver, f_thres=6, b_thres=6)).train()
    m(torch.randn(2, 1, 28, 28)).sum().backward()
    assert m.last_fwd_stats.iters <= 6 and m._bwd_stats[0].iters <= 6


# ------------------------------------------------------------- the Lipschitz multiscale DEQ
def test_lipschitz_variant_fusion_weights_and_parameter_count():
    """The softmax fusion weights the spec lists, and no extra parameters (spec section 2.1)."""
    from pcdeq.multiscale import LIP_MNIST_MS, fusion_weights
    w = fusion_weights(3)
    assert torch.allclose(w, torch.tensor([[0, .7311, .2689], [.7311, 0, .2689], [.5, .5, 0]]), atol=1e-4)
    w4 = fusion_weights(4)
    assert torch.allclose(w4[2], torch.tensor([.4223, .4223, 0, .1554]), atol=1e-4)
    assert torch.allclose(w4[3], torch.tensor([1 / 3, 1 / 3, 1 / 3, 0]))
    assert _count(MDEQ(LIP_MNIST_MS)) == 131_634


def test_mean_only_groupnorm_centres_without_scaling():
    from pcdeq.multiscale import MeanOnlyGroupNorm
    gn = MeanOnlyGroupNorm(2, 4)
    x = torch.randn(3, 4, 5, 5) * 7 + 2
    y = gn(x)
    groups = y.view(3, 2, -1)
    assert torch.allclose(groups.mean(dim=2), torch.zeros(3, 2), atol=1e-5)
    assert torch.allclose(y, x - x.view(3, 2, -1).mean(2, keepdim=True).expand(3, 2, 50).reshape_as(x))


def test_the_reshaped_kernel_sigma_is_not_the_convolutions_norm():
    """Finding (1) of the spec: an all-ones 3x3 kernel has reshaped sigma 3 and operator norm
    9 (its DC gain), so a cap on the reshaped sigma does not bound the convolution."""
    from pcdeq.multiscale import conv_norm
    W = torch.ones(1, 1, 3, 3)
    assert float(torch.linalg.matrix_norm(W.reshape(1, -1), 2)) == pytest.approx(3.0)
    assert conv_norm(W, (28, 28)) == pytest.approx(9.0, rel=1e-3)  # the torus bound, 28 + 2
    m = MDEQ(MDEQConfig())
    m(torch.randn(2, 1, 28, 28))
    ratios = [op / sv for _, sv, op in m.conv_norms()]
    assert max(ratios) > 1.5 and min(ratios) >= 1.0 - 1e-6  # at init already up to ~2x


def test_the_published_cap_is_undone_at_the_next_forward_and_the_certified_one_holds():
    """Finding (2): with weight norm the reference's cap divides a derived weight that the
    next forward recomputes from (g, v); the certified cap scales g and lasts, and bounds
    every conv of f by T in true operator norm."""
    from pcdeq.multiscale import LIP_MNIST_MS
    torch.manual_seed(0)
    x = torch.randn(2, 1, 28, 28)

    def sigma(w):
        return float(torch.linalg.matrix_norm(w.detach().reshape(w.shape[0], -1), 2))

    m = MDEQ(LIP_MNIST_MS)
    m(x)
    conv = m.f.blocks[0].conv1
    with torch.no_grad():
        conv.g.mul_(5.0)  # far above T = 2
    m(x)
    before = sigma(conv.weight)
    m.project_()
    assert sigma(conv.weight) < before  # capped ...
    m(x)
    assert sigma(conv.weight) == pytest.approx(before)  # ... and restored by the next forward
    c = MDEQ(MDEQConfig(**{**LIP_MNIST_MS.__dict__, "cap": "certified"}))
    c(x)
    with torch.no_grad():
        c.f.blocks[0].conv1.g.mul_(5.0)
    c(x)
    c.project_()
    c(x)
    assert max(op for _, _, op in c.conv_norms()) <= LIP_MNIST_MS.target_norm * (1 + 1e-6)
    assert all(float(gn.weight.detach().abs().max()) <= 1.0 for gn in c.f.modules()
               if isinstance(gn, torch.nn.GroupNorm) and gn.weight is not None)


@pytest.mark.parametrize("cap,scale", [("certified", 1.0), ("certified", 4.0), ("as-published", 4.0)])
def test_the_product_bound_bounds_the_lipschitz_constant_the_map_realises(cap, scale):
    """Section 2.4's bound, computed from the model's true norms, holds for any weights (it
    is an upper bound), and the certified cap keeps it below 1 while the published one does
    not (the spec's two findings, on numbers)."""
    import dataclasses
    from pcdeq.multiscale import LIP_MNIST_MS
    torch.manual_seed(0)
    m = MDEQ(dataclasses.replace(LIP_MNIST_MS, cap=cap)).eval()
    with torch.no_grad():
        for mod in m.f.modules():
            if isinstance(mod, (torch.nn.Conv2d, WNConv2d)):
                (mod.weight if isinstance(mod, torch.nn.Conv2d) else mod.g).mul_(scale * 20)
    x = torch.rand(4, 1, 28, 28)
    m(x)
    m.project_()
    m(x)
    bound = m.product_bound()
    realised = m.equilibrium_jacobian_norm(x)
    assert realised <= bound * (1 + 1e-6)
    if cap == "certified":
        assert bound < 1
    else:
        assert bound > 1  # the reshaped-kernel cap, undone for the weight-normed convs
    assert MDEQ(MNIST_MS).product_bound() is None  # std GroupNorm: no global bound


@pytest.mark.parametrize("cap", ["as-published", "certified"])
def test_lipschitz_variant_implicit_gradient_equals_backprop_through_the_iteration(cap):
    """The Lipschitz MDEQ trains through the same implicit backward pass (Anderson both
    ways): on a tiny float64 instance with its own constructions (scaled ReLU, mean-only
    GroupNorm, alpha-residual, beta-fusion, the cap applied once) and no dropout, the implicit
    gradient equals the gradient through 60 unrolled steps from z = 0."""
    import dataclasses
    from pcdeq.multiscale import LIP_MNIST_MS
    torch.manual_seed(0)
    cfg = dataclasses.replace(LIP_MNIST_MS, channels=(4, 8), head_channels=(2, 4),
                              final_channels=16, groups=2, dropout=0.0, cap=cap,
                              tol=1e-11, f_thres=60, b_thres=60)
    m = MDEQ(cfg).double().eval()
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    m(x)
    m.project_()
    m.train_step = -1
    m(x).sum().backward()
    implicit = [p.grad.clone() for p in m.parameters()]
    assert m.last_fwd_stats.residual < 1e-9 and m.last_bwd_stats.residual < 1e-9
    m.zero_grad()
    m.cfg = dataclasses.replace(cfg, pretrain_steps=1, num_layers=60)
    m.train_step = 0
    m(x).sum().backward()
    for a, (n, p) in zip(implicit, m.named_parameters()):
        assert torch.allclose(a, p.grad, rtol=1e-5, atol=1e-9), n


def test_certified_bound_holds_after_optimizer_steps_on_random_inputs():
    """The certified mode's promise as training uses it, against adversarial steps: each SGD
    step (lr 1) descends the cross-entropy minus the squared norm of every parameter, so it
    triples every weight; after each step and its projection the product bound is < 1, and the
    Lipschitz constant realised at z* on a fresh random batch does not exceed it. The
    as-published cap under the same steps is the negative control: its bound exceeds 1."""
    import dataclasses
    from pcdeq.multiscale import LIP_MNIST_MS
    for cap in ("certified", "as-published"):
        torch.manual_seed(0)
        m = MDEQ(dataclasses.replace(LIP_MNIST_MS, cap=cap, f_thres=30, tol=1e-6))
        opt = torch.optim.SGD(m.parameters(), lr=1.0)
        bounds = []
        for step in range(4):
            m.train()
            x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
            opt.zero_grad()
            growth = sum((p ** 2).sum() for p in m.parameters())
            (torch.nn.functional.cross_entropy(m(x), y) - growth).backward()
            opt.step()
            m.project_()
            m.eval()
            u = torch.rand(4, 1, 28, 28)
            m(u)
            bounds.append(m.product_bound())
            if cap == "certified":
                assert bounds[-1] < 1, (step, bounds)
                assert m.equilibrium_jacobian_norm(u) <= bounds[-1] * (1 + 1e-5)
        if cap == "as-published":
            assert max(bounds) > 1, bounds
