"""The paper's architectures L, SC and MC (Appendix B), and ``build_model`` for every method
family.

Every model is a stack of :class:`DEQStage` s (pre-layer -> BN -> DEQ -> pool -> BN)
followed by a classifier head; the sizes come from the family's hyperparameters, never from
here. Each family (:mod:`pcdeq.families`) builds its model: the harness baselines (DEQ,
DEQ-JR, LipDEQ) put another DEQ layer into :func:`paper_model`; monDEQ keeps its own
architecture (no BN, circular convolution, border ReLU).
"""

from __future__ import annotations

import contextlib

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch
from torch import Tensor, nn

from .errors import ConfigError
from .hparams import DatasetInfo, HParams, dataset_info
from .layers import EquilibriumLayer

if TYPE_CHECKING:
    from .families import Method


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
    method: "Method"
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
        terms = [l.aux_loss for l in self.deq_layers() if l.aux_loss is not None]
        return sum(terms) if terms else None

    def deq_layers(self) -> list[EquilibriumLayer]:
        return [s.deq for s in self.stages]

    @torch.no_grad()
    def project_(self) -> None:
        """Enforce every DEQ layer's weight constraint; call after each optimizer step."""
        for layer in self.deq_layers():
            layer.project_()


@contextlib.contextmanager
def capturing_inputs(model: DEQClassifier) -> Iterator[dict[nn.Module, Any]]:
    """Within the block, every DEQ layer's input u of its first call is kept (layer -> u): what
    the trainer's invariants, the claims and the benchmark measure the layers on."""
    seen: dict[nn.Module, Any] = {}
    hooks = [l.register_forward_pre_hook(lambda m, a: seen.setdefault(m, a[0]))
             for l in model.deq_layers()]
    try:
        yield seen
    finally:
        for h in hooks:
            h.remove()


def n_params(model: nn.Module) -> int:
    """Trainable parameters (BN affine and weight-norm gains included, running stats not)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# (features n, spatial size or None for vectors) -> the family's DEQ layer on them.
LayerFactory = Callable[[int, "int | None"], nn.Module]
ARCH_WIDTHS = {"L": 1, "SC": 1, "MC": 3}  # how many channel widths each paper architecture takes


def paper_model(info: DatasetInfo, arch: str, hp: HParams,
                layer: LayerFactory) -> tuple[list[DEQStage], nn.Module]:
    """The paper's architecture ``arch`` (Appendix B) around a family's DEQ layer.

    L: flatten -> Linear(d, n) -> stage -> Linear(n, classes).  SC / MC: one / three conv
    stages (the first keeps the size; later MC stages halve it: 3x3, stride 2, no pad) ->
    AvgPool -> flatten -> Linear.

    Args:
        info: the dataset (input shape, classes).
        arch: ``L``, ``SC`` or ``MC``.
        hp: the run's hyperparameters (``channels``: the stage widths).
        layer: builds the DEQ layer of each stage.

    Returns:
        The stages and the classifier head.
    """
    if arch == "L":
        (n,) = hp.channels
        d_in = info.in_channels * info.size ** 2
        pre = nn.Sequential(nn.Flatten(), nn.Linear(d_in, n))  # (B, C, H, W) -> (B, n)
        return [DEQStage(pre, layer(n, None), n, conv=False)], nn.Linear(n, info.n_classes)
    stages, c_in, size = [], info.in_channels, info.size
    for i, c in enumerate(hp.channels):
        pre = nn.Conv2d(c_in, c, 3, padding=1) if i == 0 else nn.Conv2d(c_in, c, 3, stride=2)
        size = size if i == 0 else (size - 3) // 2 + 1
        stages.append(DEQStage(pre, layer(c, size), c, conv=True))
        c_in = c
    # SC: AvgPool2d(8): 28 -> 3, 32 -> 4.  MC: AvgPool2d(4) after 28->13->6 or 32->15->7: -> 1.
    pool = 8 if arch == "SC" else 4
    out = (size - pool) // pool + 1
    head = nn.Sequential(nn.AvgPool2d(pool), nn.Flatten(), nn.Linear(c_in * out * out, info.n_classes))
    return stages, head


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
    # The families build on this module's architectures, so the registry is looked up here.
    from .families import METHOD_FAMILIES, hyperparameters, parse_method

    info = dataset_info(dataset)
    m = parse_method(method)
    family = METHOD_FAMILIES[m.family]
    hp = hparams if hparams is not None else hyperparameters(info.name, m)
    hp = replace(hp, tol=hp.tol if tol is None else tol, max_iter=hp.max_iter if max_iter is None else max_iter,
                 channels=hp.channels if channels is None else tuple(channels))
    widths = ARCH_WIDTHS.get(m.arch)
    if widths is not None and len(hp.channels) != widths:
        raise ConfigError(f"{m.arch} models take {widths} channel widths, got {hp.channels}")
    stages, head = family.build(info, m, hp, dict(solver=solver, tol=hp.tol, max_iter=hp.max_iter))
    model = DEQClassifier(stages, head, ModelSpec(info.name, m, hp, family.solver or solver))
    if m.arch != "L" and family.channels_last:
        # Channels-last weights make every convolution (and its transpose in the adjoint
        # solve) run channels-last: on CPU (oneDNN) convolutions measured about 2x faster,
        # max-pooling 5x (see README, Performance). The layout follows the weights through
        # W = g v / ||v|| and BN.
        model = model.to(memory_format=torch.channels_last)
    return model
