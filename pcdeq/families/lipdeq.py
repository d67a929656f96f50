"""LipDEQ: the paper's architectures with ||W||_2 <= c < 1 kept by rescaling after every step,
a contraction for a 1-Lipschitz activation (the Lipschitz route of Sato & Iiduka 2026, on the
paper's single-layer architectures; their multiscale model is issue 17's)."""

from __future__ import annotations

from typing import Mapping

from ..activations import HARNESS_ACTIVATIONS
from ..hparams import ARCHITECTURES, DatasetInfo, HParams
from ..layers import LIP_BOUND, LipDEQConv2d, LipDEQLinear, check_lip_bound
from ..models import paper_model
from .pcdeq import paper_hparams
from .registry import Method, MethodFamily, register_family


def _build(info: DatasetInfo, m: Method, hp: HParams, kw: dict):
    def layer(n: int, size: int | None):
        if size is None:
            return LipDEQLinear(n, m.activation, hp.lip_bound, **kw)
        return LipDEQConv2d(n, (size, size), m.activation, hp.lip_bound, **kw)
    return paper_model(info, m.arch, hp, layer)


def _check(flags: Mapping[str, float]) -> None:
    if flags.get("lip_bound") is not None:
        check_lip_bound(flags["lip_bound"])


register_family(MethodFamily(
    "LipDEQ", "LipDEQ", ARCHITECTURES, HARNESS_ACTIVATIONS, None, False,
    "W rescaled after every step to operator norm ||W||_2 <= c < 1 (a contraction; "
    "the Lipschitz route of Sato & Iiduka 2026)",
    hparams=lambda info, m: paper_hparams(info, m, lip_bound=LIP_BOUND), build=_build,
    flags=("lip_bound",), check_flags=_check,
    compared=("LipDEQ-L-Tanh", "LipDEQ-SC-ReLU", "LipDEQ-MC-ReLU")))
