"""Architectures, parameter counts, the theory's input conditions and the nonnegativity projection."""

import pytest
import torch

import pcdeq
from pcdeq import ConfigError, build_model, n_params

COUNTS = [
    ("mnist", "pcDEQ-1-L-ReLU6", 70_410),
    ("mnist", "pcDEQ-2-SC-Sigmoid", 69_136),
    ("mnist", "pcDEQ-1-MC-Tanh", 41_278),
    ("svhn", "pcDEQ-1-SC-Softsign", 164_760),
    ("cifar10", "pcDEQ-2-SC-Sigmoid", 164_760),
    ("svhn", "pcDEQ-2-MC-Sigmoid", 130_950),
    ("cifar10", "pcDEQ-1-MC-ReLU6", 130_950),
    ("cifar10", "pcDEQ-1-MC-ReLU6*", 661_470),
]


@pytest.mark.parametrize("dataset,method,count", COUNTS)
def test_parameter_counts_match_paper(dataset, method, count):
    assert n_params(build_model(dataset, method)) == count


def test_every_paper_method_builds_and_runs():
    for fam, methods in pcdeq.paper_methods().items():
        info = pcdeq.dataset_info(fam)
        for m in methods:
            model = build_model(fam, m.upper() if "L" in m else m.lower())  # case-insensitive
            with torch.no_grad():
                out = model.eval()(torch.rand(2, info.in_channels, info.size, info.size))
            assert out.shape == (2, 10)
    assert sum(map(len, pcdeq.paper_methods().values())) == 32


def test_mnist_shaped_datasets_and_overrides():
    for d in ("mnist5k", "fashion_mnist", "Fashion-MNIST"):
        assert n_params(build_model(d, "pcDEQ-1-L-ReLU6")) == 70_410
    m = build_model("mnist", "pcDEQ-1-SC-Tanh", tol=1e-6, max_iter=17)
    assert (m.deq_layers()[0].tol, m.deq_layers()[0].max_iter) == (1e-6, 17)


@pytest.mark.parametrize("dataset,method,match", [
    ("imagenet", "pcDEQ-1-L-ReLU6", "unknown dataset 'imagenet'; valid: mnist, mnist5k"),
    ("mnist", "DEQ-1-L-ReLU6", "unknown method"),
    ("mnist", "pcDEQ-2-L-Tanh", "pcDEQ-2 needs the sigmoid.*Lemma 4.2"),
    ("mnist", "pcDEQ-1-SC-Sigmoid", "pcDEQ-1 takes ReLU6, Tanh or Softsign.*Lemma 4.2"),
    ("svhn", "pcDEQ-1-L-ReLU6", "no pcDEQ-1-L-ReLU6 model for svhn"),
    ("mnist", "pcDEQ-1-MC-ReLU6*", "no pcDEQ-1-MC-ReLU6\\* model for mnist"),
])
def test_bad_input_is_refused_clearly(dataset, method, match):
    with pytest.raises(ConfigError, match=match):
        build_model(dataset, method)


def test_layer_refuses_pairings_outside_lemma_4_2():
    with pytest.raises(ConfigError, match="Lemma 4.2"):
        pcdeq.PcDEQLinear(4, variant=2, activation="relu6")
    with pytest.raises(ConfigError, match="Lemma 4.2"):
        pcdeq.PcDEQConv2d(4, variant=1, activation="sigmoid")


def test_layer_inputs_positive_and_nonnegative():
    u = 4 * torch.randn(10_000)
    assert (pcdeq.pcdeq1_input(u) > 0).all()  # pcDEQ-1: strictly positive input
    x2 = pcdeq.pcdeq2_input(u)
    assert (x2 >= 0).all() and (x2 == 0).any()  # pcDEQ-2: nonnegative, zeros allowed
    model = build_model("mnist", "pcDEQ-1-SC-ReLU6")
    layer = model.deq_layers()[0]
    seen = {}
    layer.register_forward_pre_hook(lambda mod, args: seen.update(x=mod.inputs(args[0])))
    model(torch.rand(4, 1, 28, 28))
    assert (seen["x"] > 0).all()


def test_weights_stay_nonnegative_after_optimizer_steps():
    torch.manual_seed(1)
    model = build_model("mnist", "pcDEQ-1-MC-Softsign")
    opt = torch.optim.AdamW(model.parameters(), lr=0.5, weight_decay=0.02)  # large: pushes below 0
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(torch.rand(8, 1, 28, 28)), torch.arange(8))
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.project_()
        for layer in model.deq_layers():
            assert (layer.weight.v >= 0).all() and (layer.weight.g >= 0).all()
            W = layer.effective_weight()
            assert torch.isfinite(W).all() and (W >= 0).all()


def test_dead_row_guard_keeps_w_defined():
    wn = pcdeq.NonnegativeWeightNorm((4, 4))
    with torch.no_grad():
        wn.v[1] = -1.0
    wn.project_()
    W = wn()
    assert torch.isfinite(W).all() and (W[1] == 0).all() and (W >= 0).all()
