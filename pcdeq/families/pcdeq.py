"""pcDEQ-1 and pcDEQ-2, the paper's families (Definitions 3.1, 4.3; Appendix B-C).

W >= 0 (nonnegative weight normalization), a concave activation of Remark 4.1 and an
admissible input: pcDEQ-1 takes ReLU6, tanh or softsign with x = softplus(u, beta=5) > 0,
pcDEQ-2 takes sigmoid with x = relu(u) >= 0. The architectures L, SC, MC are the paper's
(:func:`pcdeq.models.paper_model`); the hyperparameters are Tables 5-7.
"""

from __future__ import annotations

import dataclasses

from ..activations import pcdeq_activations
from ..errors import ConfigError
from ..hparams import ARCHITECTURES, PAPER_DATASET_NAMES, PAPER_REF, PAPER_TABLE, DatasetInfo, HParams
from ..layers import PcDEQConv2d, PcDEQLinear
from ..models import paper_model
from ..multiscale_pcdeq import MS_CHANNELS, multiscale_pcdeq_model
from .registry import Method, MethodFamily, baseline_methods, register_family


def paper_hparams(info: DatasetInfo, m: Method, **extra: float) -> HParams:
    """The row of Tables 5-7 for the method's architecture and pcDEQ variant (variant 1's for
    the harness DEQs), with a family's own settings in ``extra``.

    Raises:
        ConfigError: the paper defines no such model (e.g. an L model on SVHN).
    """
    key = (info.family, m.arch, m.variant or 1, m.augment)
    if key not in PAPER_TABLE:
        valid = ", ".join(methods_for(info.family) + baseline_methods(info.family))
        raise ConfigError(f"no {m.name} model for {info.name} "
                          f"({PAPER_DATASET_NAMES[info.family]} family); valid: {valid}")
    channels, epochs, lr, decay, wd = PAPER_TABLE[key]
    return HParams(channels, epochs, lr, decay, 0.1, wd, **extra)


def methods_for(family: str) -> list[str]:
    """The paper's methods for a dataset family, in the order of Tables 1-3."""
    out = []
    for (fam, arch, variant, augment) in PAPER_TABLE:
        if fam == family:
            out += [Method(f"pcDEQ-{variant}", arch, a, augment).name
                    for a in pcdeq_activations(variant)]
    return out


def paper_methods() -> dict[str, list[str]]:
    """Every (dataset family -> methods) pair of Tables 1-3: 12 + 8 + 12 = 32 methods."""
    return {fam: methods_for(fam) for fam in PAPER_DATASET_NAMES}


def _hparams(info: DatasetInfo, m: Method) -> HParams:
    if m.arch != "MS":
        return paper_hparams(info, m)
    # The multiscale pcDEQ (issue 17; not in the paper): pcDEQ's protocol, the MC row of the
    # dataset family (optimizer, lr, weight decay, epochs, decay), its own widths.
    mc = paper_hparams(info, Method(m.family, "MC", m.activation, False))
    return dataclasses.replace(mc, channels=MS_CHANNELS)


def _build(info: DatasetInfo, m: Method, hp: HParams, kw: dict):
    if m.arch == "MS":
        return multiscale_pcdeq_model(info.in_channels, info.size, info.n_classes, hp.channels,
                                      m.variant, m.activation, **kw)

    def layer(n: int, size: int | None):
        return (PcDEQLinear if size is None else PcDEQConv2d)(n, m.variant, m.activation, **kw)
    return paper_model(info, m.arch, hp, layer)


for _variant, _summary in (
        (1, f"the paper: W >= 0, nonnegative concave activation, input x > 0; {PAPER_REF}"),
        (2, f"the paper: W >= 0, sigmoid, input x >= 0; {PAPER_REF}")):
    register_family(MethodFamily(
        f"pcDEQ-{_variant}", "pcDEQ", (*ARCHITECTURES, "MS"), pcdeq_activations(_variant), None,
        True, _summary, hparams=_hparams, build=_build, variant=_variant))
