"""The standard DEQ and the Jacobian-regularized DEQ (Bai, Koltun & Kolter 2021) on the
paper's architectures: W free (weight-normalized, ordinary init), x = u, the same plain
fixed-point solver and the hyperparameters of pcDEQ-1's row, so that the only difference from
pcDEQ is the constraint (or the regularizer).
"""

from __future__ import annotations

from typing import Mapping

from ..activations import HARNESS_ACTIVATIONS
from ..hparams import ARCHITECTURES, DatasetInfo, HParams
from ..layers import JR_PROB, JR_WEIGHT, DEQConv2d, DEQLinear, JacobianRegularizer, check_jr
from ..models import paper_model
from .pcdeq import paper_hparams
from .registry import Method, MethodFamily, register_family


def _build(info: DatasetInfo, m: Method, hp: HParams, kw: dict):
    def layer(n: int, size: int | None):
        reg = JacobianRegularizer(hp.jr_weight, hp.jr_prob) if m.family == "DEQ-JR" else None
        return (DEQLinear if size is None else DEQConv2d)(n, m.activation, regularizer=reg, **kw)
    return paper_model(info, m.arch, hp, layer)


def _check_jr(flags: Mapping[str, float]) -> None:
    check_jr(flags.get("jr_weight"), flags.get("jr_prob"))


register_family(MethodFamily(
    "DEQ", "DEQ", ARCHITECTURES, HARNESS_ACTIVATIONS, None, False,
    "standard DEQ: the paper's architecture with W free (no constraint, no input "
    "positivity), the same plain fixed-point solver",
    hparams=paper_hparams, build=_build,
    compared=("DEQ-L-Tanh", "DEQ-L-ReLU", "DEQ-SC-Tanh", "DEQ-MC-Tanh")))
register_family(MethodFamily(
    "DEQ-JR", "DEQ-JR", ARCHITECTURES, HARNESS_ACTIVATIONS, None, False,
    "standard DEQ + Jacobian regularization gamma * ||J_f(z*)||_F^2 / d, Hutchinson "
    "estimate, applied with probability p per step (Bai, Koltun & Kolter 2021)",
    hparams=lambda info, m: paper_hparams(info, m, jr_weight=JR_WEIGHT, jr_prob=JR_PROB),
    build=_build, flags=("jr_weight", "jr_prob"), check_flags=_check_jr,
    compared=("DEQ-JR-L-Tanh", "DEQ-JR-SC-Tanh")))
