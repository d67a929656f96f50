"""Implicit gradients equal gradients through the unrolled iteration (float64)."""

import pytest
import torch

import pcdeq
from pcdeq.layers import DEQLayer

from conftest import unrolled_forward


def _grads(model, x, y):
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return {k: p.grad.clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("method,channels,shape", [
    ("pcDEQ-1-L-Tanh", (12,), (6, 1, 28, 28)),
    ("pcDEQ-2-L-Sigmoid", (12,), (6, 1, 28, 28)),
    ("pcDEQ-1-SC-Softsign", (3,), (2, 1, 28, 28)),
    ("pcDEQ-2-SC-Sigmoid", (3,), (2, 1, 28, 28)),
])
def test_implicit_equals_unrolled(method, channels, shape, monkeypatch):
    model = pcdeq.build_model("mnist", method, channels=channels, tol=1e-13, max_iter=1000).double()
    with torch.no_grad():  # a W far from the tiny initial one, so the Jacobian matters
        for layer in model.deq_layers():
            layer.weight.g.mul_(2.0 / layer.weight.g.max())
    model.eval()  # BN with running stats: the same function in both passes
    x = torch.rand(shape, dtype=torch.double)
    y = torch.arange(shape[0]) % 10
    implicit = _grads(model, x, y)
    assert all(l.last_bwd_iters > 2 for l in model.deq_layers())
    monkeypatch.setattr(DEQLayer, "forward", unrolled_forward)
    unrolled = _grads(model, x, y)
    for k in implicit:
        torch.testing.assert_close(implicit[k], unrolled[k], rtol=1e-7, atol=1e-10, msg=k)
