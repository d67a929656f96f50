"""monDEQ (Winston & Kolter 2020) with its own architecture and protocol.

W = (1 - m) I - A^T A + B - B^T is monotone, the nonlinearity is relu (the proximal map of
z >= 0, their Thm. 1), and the forward and backward passes are Peaceman-Rachford splittings
(:mod:`pcdeq.mondeq`). Its protocol (App. E, Table E1; their train.py / notebook): Adam,
lr 1e-3, batch 128, 40 epochs, tol 1e-2, max_iter 300, m = 1, alpha = 1 then tuned, inputs
standardized.
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from ..hparams import DatasetInfo, HParams
from ..models import DEQStage
from ..mondeq import MonDEQ, MonotoneConv2d, MonotoneLinear
from .registry import Method, MethodFamily, baseline_methods, register_family

# (dataset family, arch) -> (width, lr decay every k epochs).
# MNIST SC: 54 channels as in Table E1 and the authors' notebook (79,500 parameters); Table E1's
# 84K is the count for 56 channels.
_PROTOCOL: dict[tuple[str, str], tuple[int, int]] = {
    ("mnist", "L"): (87, 10), ("mnist", "SC"): (54, 10),
    ("svhn", "SC"): (81, 25), ("cifar10", "SC"): (81, 25),
}
MNIST_STANDARDIZATION = ((0.1307,), (0.3081,))  # monDEQ's inputs (pcDEQ uses none on MNIST)


def _hparams(info: DatasetInfo, m: Method) -> HParams:
    if (info.family, m.arch) not in _PROTOCOL:
        raise ConfigError(f"no {m.name} model for {info.name}; valid: "
                          f"{', '.join(baseline_methods(info.family))}")
    width, every = _PROTOCOL[(info.family, m.arch)]
    return HParams((width,), 40, 1e-3, every, 0.1, 0.0, batch_size=128, tol=1e-2,
                   max_iter=300, optimizer="adam", lr_decay_every=every,
                   input_norm=MNIST_STANDARDIZATION if info.family == "mnist" else None,
                   mon_m=1.0, mon_alpha=1.0)


def _build(info: DatasetInfo, m: Method, hp: HParams, kw: dict) -> tuple[list[DEQStage], nn.Module]:
    """monDEQ's SingleFcNet / SingleConvNet (their train.py).

    L: flatten -> U = Linear(d, n) -> z* = relu(W z* + U x) -> Linear(n, 10).
    SC: zero-pad the image by 1 (28 -> 30) -> U = 3x3 conv on the circularly padded image ->
    z* = border-relu(W z* + U x) with W a circular 3x3 convolution on the 30 x 30 torus (the
    zeroed 1-pixel border emulates zero padding) -> AvgPool2d(4) -> Linear(C * 7 * 7, 10).
    """
    (n,) = hp.channels
    solver_kw = dict(alpha=hp.mon_alpha, tol=kw["tol"], max_iter=kw["max_iter"])
    if m.arch == "L":
        pre = nn.Sequential(nn.Flatten(), nn.Linear(info.in_channels * info.size ** 2, n))
        deq = MonDEQ(MonotoneLinear(n, m=hp.mon_m), **solver_kw)
        return [DEQStage(pre, deq, n, conv=False, paper=False)], nn.Linear(n, info.n_classes)
    size = info.size + 2
    pre = nn.Sequential(nn.ZeroPad2d(1), nn.CircularPad2d(1), nn.Conv2d(info.in_channels, n, 3))
    deq = MonDEQ(MonotoneConv2d(n, (size, size), m=hp.mon_m), border=1, **solver_kw)
    head = nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(n * (size // 4) ** 2, info.n_classes))
    return [DEQStage(pre, deq, n, conv=True, paper=False)], head


register_family(MethodFamily(
    "monDEQ", "monDEQ", ("L", "SC"), (), "ReLU", False,
    "monotone W = (1-m)I - A^T A + B - B^T, Peaceman-Rachford forward and backward "
    "(Winston & Kolter 2020); its own protocol (Adam, batch 128, tol 1e-2)",
    hparams=_hparams, build=_build, solver="peaceman_rachford", channels_last=False,
    compared=("monDEQ-L", "monDEQ-SC"),
    notes={"MT": "monDEQ-MT, the multi-tier model, is not implemented here",
           "activation": "its nonlinearity is the proximal map of z >= 0, Winston & Kolter "
                         "2020, Thm. 1"}))
