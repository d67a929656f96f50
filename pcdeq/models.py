"""The paper's architectures L, SC and MC (Appendix B), monDEQ's (Winston & Kolter 2020), and
``build_model`` for every method family.

Every model is a stack of :class:`DEQStage` s (pre-layer -> BN -> DEQ -> pool -> BN)
followed by a classifier head; the sizes come from :mod:`pcdeq.hparams`, never from here.
The harness baselines (DEQ, DEQ-JR, LipDEQ) are the paper's architectures with another DEQ
layer; monDEQ keeps its own (no BN, circular convolution, border ReLU).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from .hparams import ConfigError, HParams, Method, dataset_info, hyperparameters, parse_method
from .layers import (DEQConv2d, DEQLayer, DEQLinear, JacobianRegularizer, LipDEQConv2d,
                     LipDEQLinear, PcDEQConv2d, PcDEQLinear)


class DEQStage(nn.Module):
    """pre (Linear or Conv2d) -> BN -> DEQ (forms its own input from u) -> pool -> BN.

    ``paper=False`` drops the BNs and the pool: monDEQ's stage is pre -> DEQ.
    """

    def __init__(self, pre: nn.Module, deq: nn.Module, out_features: int, conv: bool,
                 paper: bool = True) -> None:
        super().__init__()
        bn = nn.BatchNorm2d if conv else nn.BatchNorm1d
        self.pre = pre
        self.bn_pre = bn(out_features) if paper else nn.Identity()
        self.deq = deq
        # MaxPool2d(3, stride 1, pad 1) keeps the size: it smooths, it does not downsample.
        self.pool = nn.MaxPool2d(3, stride=1, padding=1) if conv and paper else nn.Identity()
        self.bn_post = bn(out_features) if paper else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        u = self.bn_pre(self.pre(x))
        return self.bn_post(self.pool(self.deq(u)))


@dataclass(frozen=True)
class ModelSpec:
    """What a model was built from; stored in run records."""

    dataset: str
    method: Method
    hparams: HParams
    solver: str = "fixed_point"
    extra: dict = field(default_factory=dict)


class DEQClassifier(nn.Module):
    """Stages followed by avg-pool -> flatten -> linear head."""

    def __init__(self, stages: list[DEQStage], head: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.stages = nn.Sequential(*stages)
        self.head = head
        self.spec = spec

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(x))

    def aux_loss(self) -> Tensor | None:
        """The sum of the DEQ layers' extra loss terms of the last call (Jacobian
        regularization), or None when there are none."""
        terms = [l.aux_loss for l in self.deq_layers() if getattr(l, "aux_loss", None) is not None]
        return sum(terms) if terms else None

    def deq_layers(self) -> list[DEQLayer]:
        return [s.deq for s in self.stages]

    @torch.no_grad()
    def project_(self) -> None:
        """Enforce every DEQ layer's weight constraint; call after each optimizer step."""
        for layer in self.deq_layers():
            layer.project_()


def n_params(model: nn.Module) -> int:
    """Trainable parameters (BN affine and weight-norm gains included, running stats not)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _deq_layer(m: Method, hp: HParams, n: int, size: int | None, kw: dict) -> nn.Module:
    """The DEQ layer of a harness method on n features (size=None) or n x size x size maps."""
    conv = size is not None
    if m.is_pcdeq:
        return (PcDEQConv2d if conv else PcDEQLinear)(n, m.variant, m.activation, **kw)
    if m.family == "LipDEQ":
        if conv:
            return LipDEQConv2d(n, (size, size), m.activation, hp.lip_bound, **kw)
        return LipDEQLinear(n, m.activation, hp.lip_bound, **kw)
    reg = JacobianRegularizer(hp.jr_weight, hp.jr_prob) if m.family == "DEQ-JR" else None
    return (DEQConv2d if conv else DEQLinear)(n, m.activation, regularizer=reg, **kw)


def _l_model(info, m: Method, hp: HParams, kw: dict) -> tuple[list[DEQStage], nn.Module]:
    (n,) = hp.channels
    d_in = info.in_channels * info.size ** 2
    pre = nn.Sequential(nn.Flatten(), nn.Linear(d_in, n))  # (B, C, H, W) -> (B, n)
    stage = DEQStage(pre, _deq_layer(m, hp, n, None, kw), n, conv=False)
    return [stage], nn.Linear(n, info.n_classes)


def _conv_model(info, m: Method, hp: HParams, kw: dict) -> tuple[list[DEQStage], nn.Module]:
    stages, c_in, size = [], info.in_channels, info.size
    for i, c in enumerate(hp.channels):
        # SC and the first MC stage keep the size; later MC stages halve it (3x3, stride 2, no pad).
        pre = nn.Conv2d(c_in, c, 3, padding=1) if i == 0 else nn.Conv2d(c_in, c, 3, stride=2)
        size = size if i == 0 else (size - 3) // 2 + 1
        stages.append(DEQStage(pre, _deq_layer(m, hp, c, size, kw), c, conv=True))
        c_in = c
    # SC: AvgPool2d(8): 28 -> 3, 32 -> 4.  MC: AvgPool2d(4) after 28->13->6 or 32->15->7: -> 1.
    pool = 8 if m.arch == "SC" else 4
    out = (size - pool) // pool + 1
    head = nn.Sequential(nn.AvgPool2d(pool), nn.Flatten(), nn.Linear(c_in * out * out, info.n_classes))
    return stages, head


def _mondeq_model(info, m: Method, hp: HParams, kw: dict) -> tuple[list[DEQStage], nn.Module]:
    """monDEQ's SingleFcNet / SingleConvNet (Winston & Kolter 2020, their train.py).

    L: flatten -> U = Linear(d, n) -> z* = relu(W z* + U x) -> Linear(n, 10).
    SC: zero-pad the image by 1 (28 -> 30) -> U = 3x3 conv on the circularly padded image ->
    z* = border-relu(W z* + U x) with W a circular 3x3 convolution on the 30 x 30 torus (the
    zeroed 1-pixel border emulates zero padding) -> AvgPool2d(4) -> Linear(C * 7 * 7, 10).
    """
    from .mondeq import MonDEQ, MonotoneConv2d, MonotoneLinear

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


def build_model(dataset: str, method: str, *, tol: float | None = None, max_iter: int | None = None,
                channels: tuple[int, ...] | None = None, solver: str = "fixed_point",
                hparams: HParams | None = None) -> DEQClassifier:
    """Build the model of a dataset and method, of any method family.

    Args:
        dataset: a name from :data:`pcdeq.hparams.DATASETS` (case-insensitive).
        method: a method name such as ``"pcDEQ-1-L-ReLU6"``, ``"monDEQ-SC"``,
            ``"DEQ-JR-L-Tanh"`` (case-insensitive; ``python -m pcdeq list`` lists them).
        tol, max_iter: override the solver's stopping rule (pcDEQ: 1e-4, 200; monDEQ: 1e-2, 300).
        channels: override the widths (the defaults are in :mod:`pcdeq.hparams`).
        solver: a registered solver name (the harness families; monDEQ has its own).
        hparams: the run's resolved hyperparameters (e.g. another --jr-weight or --lip-bound);
            default: :func:`pcdeq.hparams.hyperparameters`.

    Returns:
        A :class:`DEQClassifier` whose ``spec`` records what it was built from.

    Raises:
        ConfigError: unknown dataset or method, a pairing outside Lemma 4.2, or a model the
            paper does not define (e.g. L on SVHN).
    """
    info = dataset_info(dataset)
    m = parse_method(method)
    hp = hparams if hparams is not None else hyperparameters(info.name, m)
    hp = replace(hp, tol=hp.tol if tol is None else tol, max_iter=hp.max_iter if max_iter is None else max_iter,
                 channels=hp.channels if channels is None else tuple(channels))
    if len(hp.channels) != {"L": 1, "SC": 1, "MC": 3}[m.arch]:
        raise ConfigError(f"{m.arch} models take {1 if m.arch != 'MC' else 3} channel widths, got {hp.channels}")
    kw = dict(solver=solver, tol=hp.tol, max_iter=hp.max_iter)
    if m.family == "monDEQ":
        stages, head = _mondeq_model(info, m, hp, kw)
        solver = "peaceman_rachford"
    else:
        stages, head = (_l_model if m.arch == "L" else _conv_model)(info, m, hp, kw)
    model = DEQClassifier(stages, head, ModelSpec(info.name, m, hp, solver))
    if m.arch != "L" and m.family != "monDEQ":  # monDEQ's FFTs want the default layout
        # Channels-last weights make every convolution (and its transpose in the adjoint
        # solve) run channels-last: on CPU (oneDNN) convolutions measured about 2x faster,
        # max-pooling 5x (see README, Performance). The layout follows the weights through
        # W = g v / ||v|| and BN.
        model = model.to(memory_format=torch.channels_last)
    return model
