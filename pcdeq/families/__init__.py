"""Method families, one module each; importing this package registers them all.

To add a family: write ``pcdeq/families/<name>.py`` that calls
:func:`~pcdeq.families.registry.register_family` with its names, hyperparameters, flags and
model factory, and import it below (the import order is the listing order).
"""

from .registry import (METHOD_FAMILIES, Method, MethodFamily, baseline_methods, family_groups,
                       family_of, hyperparameters, method_pattern, parse_method, register_family,
                       valid_method_names)
from . import pcdeq, mondeq, deq, lipdeq, mdeq  # noqa: E402,F401  (registration, in listing order)
from .deq import JR_PROB, JR_WEIGHT  # noqa: E402
from .lipdeq import LIP_BOUND  # noqa: E402
from .mondeq import MNIST_STANDARDIZATION  # noqa: E402
from .pcdeq import methods_for, paper_methods  # noqa: E402

FAMILY_GROUPS: tuple[str, ...] = family_groups()

__all__ = [
    "FAMILY_GROUPS", "JR_PROB", "JR_WEIGHT", "LIP_BOUND", "METHOD_FAMILIES", "MNIST_STANDARDIZATION",
    "Method", "MethodFamily", "baseline_methods", "family_groups", "family_of", "hyperparameters",
    "method_pattern", "methods_for", "paper_methods", "parse_method", "register_family",
    "valid_method_names",
]
