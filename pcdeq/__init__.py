"""pcdeq: Positive Concave Deep Equilibrium Models (Gabor, Piotrowski, Cavalcante, ICML 2024).

The public API: the pcDEQ layers, the solver, the paper's models and hyperparameters.
"""

from .hparams import (ACTIVATIONS, DATASETS, ConfigError, HParams, Method, dataset_info,
                      hyperparameters, paper_methods, parse_method)
from .layers import (ACTIVATION_FNS, DEQLayer, NonnegativeWeightNorm, PcDEQ, PcDEQConv2d,
                     PcDEQLinear, pcdeq1_input, pcdeq2_input)
from .models import DEQClassifier, build_model, n_params
from .solver import SOLVERS, SolverStats, fixed_point_iter, implicit_fixed_point, register_solver

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "ACTIVATION_FNS", "DATASETS", "SOLVERS", "ConfigError", "DEQClassifier",
    "DEQLayer", "HParams", "Method", "NonnegativeWeightNorm", "PcDEQ", "PcDEQConv2d",
    "PcDEQLinear", "SolverStats", "build_model", "dataset_info", "fixed_point_iter",
    "hyperparameters", "implicit_fixed_point", "n_params", "paper_methods", "parse_method",
    "pcdeq1_input", "pcdeq2_input", "register_solver",
]
