"""pcdeq: Positive Concave Deep Equilibrium Models (Gabor, Piotrowski, Cavalcante, ICML 2024).

The public API: the pcDEQ layers, the solver, the paper's models and hyperparameters.
"""

from .activations import ACTIVATIONS
from .errors import ConfigError
from .families import (METHOD_FAMILIES, Method, baseline_methods, hyperparameters, paper_methods,
                       parse_method)
from .hparams import DATASETS, HParams, dataset_info
from .layers import (ACTIVATION_FNS, DEQConv2d, DEQLayer, EquilibriumLayer, DEQLinear, JacobianRegularizer,
                     LipDEQConv2d, LipDEQLinear, LipschitzWeight, NonnegativeWeightNorm, PcDEQ,
                     PcDEQConv2d, PcDEQLinear, WeightNorm, pcdeq1_input, pcdeq2_input)
from .models import DEQClassifier, build_model, n_params
from .solver import SOLVERS, SolverStats, fixed_point_iter, implicit_fixed_point, register_solver
from .train import load_trained

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "ACTIVATION_FNS", "DATASETS", "METHOD_FAMILIES", "SOLVERS", "ConfigError",
    "DEQClassifier", "DEQConv2d", "DEQLayer", "DEQLinear", "EquilibriumLayer", "HParams", "JacobianRegularizer",
    "LipDEQConv2d", "LipDEQLinear", "LipschitzWeight", "Method", "NonnegativeWeightNorm", "PcDEQ",
    "PcDEQConv2d", "PcDEQLinear", "SolverStats", "WeightNorm", "baseline_methods", "build_model",
    "dataset_info", "fixed_point_iter", "hyperparameters", "implicit_fixed_point", "load_trained", "n_params",
    "paper_methods", "parse_method", "pcdeq1_input", "pcdeq2_input", "register_solver",
]
