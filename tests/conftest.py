import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"

# Same numbers on every run and machine of this kind: fixed threads, fixed seeds.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def unrolled_forward(self, u, n=600):
    """DEQLayer.forward by n plain iterations with autograd through all of them (the reference
    the implicit gradients are checked against)."""
    x, W = self.input_map(u), self.weight()
    z = torch.zeros_like(x)
    for _ in range(n):
        z = self.sigma(self.op(W, z) + x)
    return z
