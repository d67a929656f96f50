"""The family registry and the activation table: one place each, and what they claim is true."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pcdeq import ConfigError, EquilibriumLayer, build_model
from pcdeq.activations import (ACTIVATIONS_, CHUNK, HARNESS_ACTIVATIONS, add_and_apply_,
                               check_variant)
from pcdeq.families import (FAMILY_GROUPS, METHOD_FAMILIES, MethodFamily, method_pattern,
                            parse_method, register_family)
from pcdeq.families.deq import _build as deq_build
from pcdeq.families.pcdeq import paper_hparams
from pcdeq.train import RunConfig, resolve_hparams


def test_registry_holds_the_families_in_listing_order():
    assert list(METHOD_FAMILIES) == ["pcDEQ-1", "pcDEQ-2", "monDEQ", "DEQ", "DEQ-JR", "LipDEQ",
                                     "MDEQ", "LipMDEQ", "LipMDEQ-cert"]
    assert FAMILY_GROUPS == ("pcDEQ", "monDEQ", "DEQ", "DEQ-JR", "LipDEQ", "MDEQ", "LipMDEQ")


@pytest.mark.parametrize("family", list(METHOD_FAMILIES))
def test_every_layer_of_every_family_answers_the_trainers_questions(family):
    f = METHOD_FAMILIES[family]
    act = "" if f.fixed_activation else f"-{f.activations[0]}"
    for arch in f.archs:
        torch.manual_seed(0)
        model = build_model("mnist5k", f"{family}-{arch}{act}")
        for layer in model.deq_layers():
            assert isinstance(layer, EquilibriumLayer), (family, arch)
            assert layer.regularized == (family == "DEQ-JR")
            assert layer.tunes_alpha == (family == "monDEQ")
            norm = layer.weight_operator_norm()
            # the weights whose constraint needs ||W||_2 report it (LipDEQ <= c, monDEQ's operator)
            assert (norm is not None) == (family in ("LipDEQ", "monDEQ")), (family, arch)
            if family == "LipDEQ":
                assert norm <= 0.9 + 1e-6


@pytest.fixture
def extra_family():
    """A family registered the way a new module would register one (then removed again)."""
    fam = MethodFamily(
        "TestDEQ", "TestDEQ", ("L",), ("Tanh",), None, False, "a registry test",
        hparams=lambda info, m: paper_hparams(info, m, lip_bound=0.5), build=deq_build,
        flags=("lip_bound",))
    register_family(fam)
    yield fam
    del METHOD_FAMILIES["TestDEQ"]


def test_a_registered_family_is_a_method_everywhere(extra_family):
    m = parse_method("testdeq-l-tanh")
    assert m.name == "TestDEQ-L-Tanh" and m.group == "TestDEQ" and not m.is_pcdeq
    assert "TestDEQ-(L)-(Tanh)" in method_pattern()
    model = build_model("mnist5k", "TestDEQ-L-Tanh")
    assert model.spec.method == m and model.spec.hparams.lip_bound == 0.5
    # its flag is accepted for it, and now also named as a TestDEQ/LipDEQ flag for others
    hp = resolve_hparams(RunConfig("mnist5k", "TestDEQ-L-Tanh", lip_bound=0.3))
    assert hp.lip_bound == 0.3
    with pytest.raises(ConfigError, match="TestDEQ takes Tanh"):
        parse_method("TestDEQ-L-ReLU")
    with pytest.raises(ConfigError, match="TestDEQ has no SC architecture"):
        parse_method("TestDEQ-SC-Tanh")


def test_registry_refuses_a_second_family_of_the_same_name_or_an_unknown_activation():
    with pytest.raises(ValueError, match="registered twice"):
        register_family(METHOD_FAMILIES["DEQ"])
    bad = dataclasses.replace(METHOD_FAMILIES["DEQ"], name="Other", activations=("Swish",))
    with pytest.raises(ValueError, match="not in pcdeq.activations"):
        register_family(bad)
    assert "Other" not in METHOD_FAMILIES


def test_flags_of_one_family_are_refused_for_another():
    with pytest.raises(ConfigError, match="--lip-bound applies to LipDEQ methods only"):
        resolve_hparams(RunConfig("mnist5k", "pcDEQ-1-L-ReLU6", lip_bound=0.5))
    with pytest.raises(ConfigError, match="--jr-prob must be in"):
        resolve_hparams(RunConfig("mnist5k", "DEQ-JR-L-Tanh", jr_prob=2.0))
    with pytest.raises(ConfigError, match="contraction"):
        resolve_hparams(RunConfig("mnist5k", "LipDEQ-L-Tanh", lip_bound=1.5))


# ------------------------------------------------------------------ the activation table
GRID = torch.linspace(0, 40, 400_001, dtype=torch.float64)


@pytest.mark.parametrize("key", list(ACTIVATIONS_))
def test_activation_facts_hold_numerically(key):
    a = ACTIVATIONS_[key]
    s = a.fn(GRID)
    # sup: reached or approached on [0, 40] (within 5%: softsign is 40/41 there); unbounded grows
    if a.sup is None:
        assert float(s[-1]) > 30
    else:
        assert float(s.max()) <= a.sup and float(s[-1]) > 0.95 * a.sup
    # Lipschitz constant: the largest slope on a grid of R (both signs)
    t = torch.linspace(-40, 40, 800_001, dtype=torch.float64)
    slope = float((a.fn(t).diff() / t.diff()).abs().max())
    assert slope <= a.lipschitz + 1e-9 and slope > a.lipschitz - 1e-3
    if a.variant is not None:  # Lemma 4.2: concave on R+; pcDEQ-1: sigma(0) = 0; pcDEQ-2: > 0
        assert float(s.diff().diff().max()) <= 1e-12
        at0 = float(a.fn(torch.zeros((), dtype=torch.float64)))
        assert (at0 == 0) if a.variant == 1 else (at0 > 0)
        check_variant(a.variant, a.name)
    else:
        assert a.outside  # says why it is outside pcDEQ


@pytest.mark.parametrize("key", [k for k, a in ACTIVATIONS_.items() if a.in_layers])
def test_activation_in_place_form_and_vjp_match_autograd(key):
    a = ACTIVATIONS_[key]
    u = torch.randn(4096, generator=torch.Generator().manual_seed(0)) * 4
    assert torch.equal(a.fn_(u.clone(), torch.empty_like(u)), a.fn(u))
    y = torch.randn_like(u)
    uu = u.clone().requires_grad_()
    (g,) = torch.autograd.grad((a.fn_step or a.fn)(uu), uu, y)  # the attaching step's autograd
    torch.testing.assert_close(a.vjp(u, a.fn(u))(y), g, rtol=1e-6, atol=1e-7)


def _conv_batch(seed: int, channels_last: bool) -> torch.Tensor:
    # larger than CHUNK and not a multiple of it: the last chunk is a short one
    t = torch.randn(12, 37, 28, 28, generator=torch.Generator().manual_seed(seed)) * 3
    t.view(-1)[:7] = 0  # |u|'s kink: sgn(0) = 0 in the softsign backward
    t.view(-1)[7] = -0.0
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t


def _bits(t: torch.Tensor) -> torch.Tensor:
    # torch.equal says -0.0 == 0.0; the claim is the same bits
    return t.contiguous().view(torch.int32 if t.dtype == torch.float32 else torch.int64)


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("key", [k for k, a in ACTIVATIONS_.items() if a.in_layers])
def test_the_chunked_map_step_gives_the_whole_tensor_bits(key, channels_last):
    """add_and_apply_ (chunk by chunk in cache for an exact activation) gives the bits of the
    whole-tensor add and sigma, in either layout; a mismatched layout takes the whole-tensor path."""
    a = ACTIVATIONS_[key]
    u, x = _conv_batch(0, channels_last), _conv_batch(1, channels_last).abs()
    assert u.numel() > CHUNK and u.numel() % CHUNK
    want = _bits(a.fn(u + x))
    scratch: list[torch.Tensor] = []
    assert torch.equal(_bits(add_and_apply_(a, u.clone(), x, scratch)), want)
    if a.exact:  # the chunked path ran: its buffer is one chunk
        assert a.needs_scratch and [t.shape for t in scratch] == [(CHUNK,)]
    assert torch.equal(_bits(add_and_apply_(a, u.clone(), x, scratch)), want)  # the kept scratch
    other = x.contiguous() if channels_last else x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(_bits(add_and_apply_(a, u.clone(), other, scratch)),
                       _bits(a.fn(u + other)))
    if a.needs_scratch:  # the whole-tensor path ran, with a buffer of u's shape and layout
        assert scratch[0].shape == u.shape and scratch[0].stride() == u.stride()
    assert torch.equal(_bits(add_and_apply_(a, u.clone(), x, scratch)), want)  # and back


@pytest.mark.parametrize("channels_last", [True, False])
def test_softsign_attach_step_has_autograds_gradient_bits(channels_last):
    """The attaching step's softsign (a backward in fewer passes) gives F.softsign's value and
    autograd's gradient bit for bit: chunked (a conv batch, y in u's layout), and on the
    whole-tensor path (y in another layout; a dense layer in float64, y a transposed view)."""
    a = ACTIVATIONS_["softsign"]
    assert a.fn_step is not None
    u, y = _conv_batch(2, channels_last), _conv_batch(3, channels_last)
    y_other = y.contiguous() if channels_last else y.contiguous(memory_format=torch.channels_last)
    dense = torch.randn(5, 40, dtype=torch.float64)
    dense[0, :3] = 0
    y_t = torch.randn(40, 5, dtype=torch.float64).t()  # not contiguous: the fallback formula
    for u, y in ((u, y), (u, y_other), (dense, y_t)):
        u1, u2 = u.clone().requires_grad_(), u.clone().requires_grad_()
        s1, s2 = a.fn(u1), a.fn_step(u2)
        (g1,), (g2,) = torch.autograd.grad(s1, u1, y), torch.autograd.grad(s2, u2, y)
        assert torch.equal(_bits(s1), _bits(s2)) and torch.equal(_bits(g1), _bits(g2))
        assert not torch.equal(g2, a.vjp(u, s1.detach())(y))  # a different formula's bits differ


def test_tanh_is_torch_tanh_to_float_rounding():
    """The table's tanh (on CPU 2 sigmoid(2u) - 1, 5x faster than torch.tanh's kernel) is
    torch.tanh to within 1.5 ulp of 1 in float32, to 1e-15 in float64 (the theory's checks)."""
    a = ACTIVATIONS_["tanh"]
    t = torch.linspace(-20, 20, 400_001)
    assert float((a.fn(t) - torch.tanh(t)).abs().max()) <= 1.5 * 2.0 ** -23
    assert float((a.fn(t.double()) - torch.tanh(t.double())).abs().max()) <= 1e-15
    y = torch.randn_like(t)  # its VJP: tanh's derivative 1 / cosh(u)^2, to a few ulp
    want = y.double() * torch.cosh(t.double()) ** -2
    torch.testing.assert_close(a.vjp(t, a.fn(t))(y).double(), want, rtol=4 * 2.0 ** -23, atol=0)
    tt = t.clone().requires_grad_()
    s = a.fn_step(tt)
    assert torch.equal(_bits(s.detach()), _bits(a.fn(t)))  # the attaching step: fn's bits ...
    assert torch.equal(_bits(torch.autograd.grad(s, tt, y)[0]), _bits(a.vjp(t, s)(y)))  # VJP's


@pytest.mark.parametrize("channels_last", [True, False])
def test_pcdeq1_input_is_softplus_with_its_gradient_bits(channels_last):
    """pcDEQ-1's input map (softplus without torch.log1p, chunked on CPU) is F.softplus(u, 5)
    to a few ulp, with the same zeros (exp underflows), u itself above F.softplus's threshold,
    autograd's gradient of F.softplus bit for bit, and the whole-tensor formula's bits."""
    from pcdeq.layers import _softplus_into, pcdeq1_input

    u = _conv_batch(4, channels_last)  # larger than CHUNK, a short last chunk, +-0
    ur, uo = u.clone().requires_grad_(), u.clone().requires_grad_()
    x, ref = pcdeq1_input(uo), torch.nn.functional.softplus(ur, beta=5)
    assert x.stride() == u.stride()
    torch.testing.assert_close(x, ref, rtol=4 * 2.0 ** -23, atol=0)
    whole = _softplus_into(u, *(torch.empty_like(u) for _ in range(3)))
    assert torch.equal(_bits(x.detach()), _bits(whole))
    y = _conv_batch(5, channels_last)
    (g,), (g_ref,) = torch.autograd.grad(x, uo, y), torch.autograd.grad(ref, ur, y)
    assert torch.equal(_bits(g), _bits(g_ref))
    t = torch.linspace(-40, 40, 800_001)
    x, ref = pcdeq1_input(t), torch.nn.functional.softplus(t, beta=5)
    assert torch.equal(x == 0, ref == 0) and (x == 0).any()
    assert torch.equal(x[5 * t > 20], t[5 * t > 20])
    normal = ref > torch.finfo(torch.float32).tiny  # below it both lose bits to subnormals
    torch.testing.assert_close(x[normal], ref[normal], rtol=4 * 2.0 ** -23, atol=0)
    d = torch.randn(30, dtype=torch.float64, requires_grad=True)  # differentiable twice (JR)
    assert torch.autograd.gradgradcheck(pcdeq1_input, (d,))


def test_harness_activations_are_the_table_ones_the_layers_take():
    assert set(HARNESS_ACTIVATIONS) == {a.name for a in ACTIVATIONS_.values() if a.in_layers}
