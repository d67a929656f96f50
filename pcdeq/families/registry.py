"""The registry of method families, and the method names it defines.

A family is one route to a stable DEQ (pcDEQ-1, pcDEQ-2, monDEQ, DEQ, DEQ-JR, LipDEQ). Its
module in :mod:`pcdeq.families` registers a :class:`MethodFamily`: the architectures and
activations its names take, its hyperparameters, the flags a run may override, and how its
model is built. Everything that knows about families (the CLI, the config schema, the models,
the trainer, the tables and figures) asks this registry; nothing else lists them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping

from ..activations import ACTIVATIONS_, check_variant
from ..errors import ConfigError
from ..hparams import DatasetInfo, HParams, dataset_info

if TYPE_CHECKING:  # the model types; the registry itself builds nothing
    from torch import nn

# (dataset, method, resolved hyperparameters, solver keywords) -> (DEQ stages, head)
ModelFactory = Callable[[DatasetInfo, "Method", HParams, dict], "tuple[list[nn.Module], nn.Module]"]


@dataclass(frozen=True)
class MethodFamily:
    """A route to a stable DEQ, as one family of method names.

    Attributes:
        name: the family's name as it starts a method name (``pcDEQ-1``, ``monDEQ``, ...).
        group: the row group of Table 8 / the colour of Figures 11-12 (``pcDEQ`` for both variants).
        archs: architectures the family defines.
        activations: activations its names take; empty when the family fixes one
            (``fixed_activation``) and its names carry none (``monDEQ-L``).
        fixed_activation: the one activation of a family whose names carry none.
        augment: whether the ``*`` (augmented CIFAR-10 MC) models exist.
        summary: one line for ``python -m pcdeq list`` and the table notes.
        hparams: (dataset, method) -> the method's hyperparameters (raises ``ConfigError``
            where the family defines no model for the dataset).
        build: builds the model's DEQ stages and head (see :data:`ModelFactory`).
        variant: 1 or 2 for the paper's pcDEQ-1 / pcDEQ-2, None for the other families.
        flags: the :class:`~pcdeq.hparams.HParams` fields a run may override for this family
            only (``--jr-weight``), checked by ``check_flags``.
        check_flags: refuses bad values of those flags (``ConfigError``).
        solver: the solver the family's layers always use (monDEQ's Peaceman-Rachford); None:
            the run's (``fixed_point`` by default).
        channels_last: conv models run with channels-last weights (monDEQ's FFTs want the
            default layout).
        compared: the family's methods in the side-by-side comparison (Table 8).
        notes: a sentence for a refused name, by architecture or ``"activation"``.
    """

    name: str
    group: str
    archs: tuple[str, ...]
    activations: tuple[str, ...]
    fixed_activation: str | None
    augment: bool
    summary: str
    hparams: Callable[[DatasetInfo, "Method"], HParams]
    build: ModelFactory
    variant: int | None = None
    flags: tuple[str, ...] = ()
    check_flags: Callable[[Mapping[str, float]], None] | None = None
    solver: str | None = None
    channels_last: bool = True
    compared: tuple[str, ...] = ()
    notes: Mapping[str, str] = field(default_factory=dict)

    def pattern(self) -> str:
        """The family's method names as a human-readable pattern."""
        acts = f"-{{{'|'.join(self.activations)}}}" if self.activations else ""
        return f"{self.name}-{{{'|'.join(self.archs)}}}{acts}" + ("[*]" if self.augment else "")


# Registration order is listing order (``python -m pcdeq list``, Table 8, the figures' legend).
METHOD_FAMILIES: dict[str, MethodFamily] = {}


def register_family(family: MethodFamily) -> MethodFamily:
    """Add a family to the registry (each family module calls this once at import).

    Raises:
        ValueError: the name is taken or uses an activation the activation table lacks.
    """
    if family.name in METHOD_FAMILIES:
        raise ValueError(f"method family {family.name!r} is registered twice")
    unknown = [a for a in (*family.activations, family.fixed_activation or "ReLU")
               if a.lower() not in ACTIVATIONS_]
    if unknown:
        raise ValueError(f"{family.name}: activations {unknown} are not in pcdeq.activations")
    METHOD_FAMILIES[family.name] = family
    return family


def family_groups() -> tuple[str, ...]:
    """The row groups of Table 8, in registration order."""
    return tuple(dict.fromkeys(f.group for f in METHOD_FAMILIES.values()))


@dataclass(frozen=True)
class Method:
    """A parsed method name, e.g. ``pcDEQ-1-L-ReLU6``, ``pcDEQ-2-MC-Sigmoid*``, ``monDEQ-SC``,
    ``DEQ-JR-L-Tanh``, ``LipDEQ-MC-ReLU``."""

    family: str  # a key of METHOD_FAMILIES
    arch: str  # "L" | "SC" | "MC"
    activation: str  # the layer's activation (monDEQ: ReLU, not part of its name)
    augment: bool  # "*": CIFAR-10 with data augmentation and the wider MC* model

    @property
    def variant(self) -> int | None:
        """1 or 2 for the paper's pcDEQ-1 / pcDEQ-2, None for the other families."""
        return METHOD_FAMILIES[self.family].variant

    @property
    def is_pcdeq(self) -> bool:
        return self.variant is not None

    @property
    def group(self) -> str:
        return METHOD_FAMILIES[self.family].group

    @property
    def arch_key(self) -> str:
        """The size / parameter key: ``L``, ``SC``, ``MC``, ``MC*`` (augmented MC) or ``MS``."""
        return self.arch + ("*" if self.augment else "")

    @property
    def name(self) -> str:
        act = "" if METHOD_FAMILIES[self.family].fixed_activation else f"-{self.activation}"
        return f"{self.family}-{self.arch}{act}" + ("*" if self.augment else "")


def _name_re() -> re.Pattern[str]:
    # Longest family names first, so that "DEQ-JR-L-Tanh" is not read as DEQ with arch "JR".
    names = sorted((re.escape(f) for f in METHOD_FAMILIES), key=len, reverse=True)
    return re.compile(rf"^({'|'.join(names)})-([a-z]+)(?:-([a-z0-9]+))?(\*?)$", re.I)


def method_pattern() -> str:
    """A regular expression matching every well-formed method name (config schema, workflow)."""
    alts = []
    for f in METHOD_FAMILIES.values():
        acts = f"-({'|'.join(f.activations)})" if f.activations else ""
        alts.append(f"{f.name}-({'|'.join(f.archs)}){acts}" + (r"\*?" if f.augment else ""))
    return "^(" + "|".join(alts) + ")$"


def valid_method_names() -> str:
    """The valid method names, one pattern per family (for error messages)."""
    return ", ".join(f.pattern() for f in METHOD_FAMILIES.values())


def parse_method(name: str) -> Method:
    """Parse a method name of any family, case-insensitively.

    Raises:
        ConfigError: a malformed name, an unknown family, an architecture or activation the
            family does not define (e.g. ``monDEQ-L-Tanh``: monDEQ needs ReLU), or a pcDEQ
            pairing that breaks Lemma 4.2. The message lists the valid names.
    """
    m = _name_re().match(name.strip())
    if not m:
        raise ConfigError(f"unknown method {name!r}; valid: {valid_method_names()} "
                          "(e.g. pcDEQ-1-L-ReLU6, pcDEQ-2-SC-Sigmoid, monDEQ-L, DEQ-L-Tanh)")
    fam = next(f for f in METHOD_FAMILIES.values() if f.name.lower() == m[1].lower())
    arch, act, star = m[2].upper(), m[3], bool(m[4])
    if arch not in fam.archs:
        note = f" ({fam.notes[arch]})" if arch in fam.notes else ""
        raise ConfigError(f"{name!r}: {fam.name} has no {arch} architecture; valid: {fam.pattern()}"
                          + note)
    if fam.fixed_activation:
        if act is not None:
            raise ConfigError(
                f"{name!r}: {fam.name} is defined with {fam.fixed_activation} only "
                f"({fam.notes.get('activation', 'its only activation')}), so "
                f"its names carry no activation; valid: {fam.pattern()}, e.g. {fam.name}-{arch}")
        activation = fam.fixed_activation
    elif act is None:
        raise ConfigError(f"{name!r}: missing the activation; valid: {fam.pattern()}")
    elif act.lower() not in ACTIVATIONS_ or not ACTIVATIONS_[act.lower()].in_layers:
        raise ConfigError(f"{name!r}: unknown activation {act!r}; valid: {fam.pattern()}")
    else:
        activation = ACTIVATIONS_[act.lower()].name
        if fam.variant is not None:
            check_variant(fam.variant, activation)  # the Lemma 4.2 message
        elif activation not in fam.activations:
            raise ConfigError(f"{name!r}: {fam.name} takes {', '.join(fam.activations)}, got "
                              f"{act!r}; valid: {fam.pattern()}")
    if star and not (fam.augment and arch == "MC"):
        raise ConfigError(f"{name!r}: the '*' (augmented) models exist only for pcDEQ MC on CIFAR-10")
    return Method(fam.name, arch, activation, star)


def family_of(method: str | Method) -> MethodFamily:
    """The registered family of a method (a name is parsed, and so checked)."""
    m = parse_method(method) if isinstance(method, str) else method
    return METHOD_FAMILIES[m.family]


def hyperparameters(dataset: str, method: str | Method) -> HParams:
    """The hyperparameters of a (dataset, method) pair, as its family defines them: the
    paper's Tables 5-7 for pcDEQ and for the harness DEQs (DEQ, DEQ-JR, LipDEQ take pcDEQ-1's
    row of the same architecture), monDEQ's own protocol for monDEQ.

    Raises:
        ConfigError: if no such model exists (e.g. an L model on SVHN).
    """
    info = dataset_info(dataset)
    m = parse_method(method) if isinstance(method, str) else method
    return METHOD_FAMILIES[m.family].hparams(info, m)


def baseline_methods(family: str) -> list[str]:
    """The stable-DEQ baselines defined for a dataset family (L models only on MNIST)."""
    return [name for f in METHOD_FAMILIES.values() for name in f.compared
            if family == "mnist" or parse_method(name).arch != "L"]
