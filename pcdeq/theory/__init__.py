"""The theory at work on problems small enough to draw (notebooks ``pcdeq_theory`` and
``linear_deq_dynamics``; Figure 13, Table 9, Figure 14).

Two self-contained studies, both on synthetic problems (random matrices and inputs drawn from
seeded ``torch.Generator`` objects, float64 throughout); nothing here reads a trained model.

**Part 1: why pcDEQ converges** (Prop. 4.6 of the paper). The map g(z) = sigma(W z + x) with
W >= 0 entrywise and an admissible activation / input pairing (Lemma 4.2: pcDEQ-1 = ReLU6,
tanh or softsign with x > 0; pcDEQ-2 = sigmoid with x >= 0) has exactly one fixed point, and
plain fixed-point iteration reaches it geometrically from every z >= 0, whatever ||W||_2 is.
:func:`study_case` runs the iteration from many nonnegative starts at once, counts the distinct
limits, detects cycles and divergence, fits the geometric rate and compares it with the
spectral radius of the Jacobian at the fixed point. :data:`BREAKS` builds the same map with
one hypothesis removed (a sign of W flipped, x = 0, a convex activation), to show what the
hypotheses are for; :func:`theorem_conditions` says which hypothesis a case breaks.

**Part 2: gradient descent on linear and single-index DEQs** (the setting of Dandapanthula &
Ramdas, arXiv 2511.16976). z* = (I - W)^{-1} U x, prediction phi(v^T z*), squared loss. The
prediction is invariant under (I - W, U) -> (c (I - W), c U) and (v, U) -> (c v, U / c), so
gradient flow conserves Q1 = ||U||_F^2 + ||I - W||_F^2 and Q2 = ||v||^2 - ||U||_F^2, and each
gradient-descent step with step size eta changes them by exactly
eta^2 (||grad_W||^2 + ||grad_U||^2) and eta^2 (||grad_v||^2 - ||grad_U||^2). This derivation is
ours (``shared/spec/related.md`` section 4); the paper's own statement is not available.
:func:`gradient_descent` runs several step sizes side by side and records the loss, both
quantities, their predicted drift and sigma_min(I - W).

The package, by seam: :mod:`~pcdeq.theory.maps` (the maps and the theorem's hypotheses),
:mod:`~pcdeq.theory.iteration` (multi-start iteration, rate fit: also used by the claims and
Figure 15), :mod:`~pcdeq.theory.geometry` / :mod:`~pcdeq.theory.geometry_report` (Part 1),
:mod:`~pcdeq.theory.dynamics` / :mod:`~pcdeq.theory.dynamics_report` (Part 2). Every name is
importable from ``pcdeq.theory`` itself. Heavy imports (matplotlib) happen inside the
plotting functions.
"""

from .maps import (BREAKS, Break, Condition, DTYPE, EXTRA_ACTIVATIONS, EXTRA_NOTES, LIPSCHITZ,
                   MapCase, PRETTY, UPPER_BOUND, generator, activation_fn, broken_case,
                   contraction_case, pcdeq_case, random_input, random_matrix, require_theorem,
                   single_thread, spectral_norm, spectral_radius, theorem_conditions, theorem_label)  # noqa: F401
from .iteration import (MultiStart, RateFit, fit_rate, iterate_batch, iterate_many,  # noqa: F401
                        nonnegative_starts)
from .geometry import (CaseResult, GeometrySettings, GeometryStudy, banach_curves, geometry_study,  # noqa: F401
                       study_case)
from .geometry_report import (convergence_table, geometry_figure, limits_text, rate_text, verdict)  # noqa: F401
from .dynamics import (DEQParams, DynamicsSettings, DynamicsStudy, GDRun, Grads, LEAKY_SLOPE,
                       LINKS, Problem, StepCheck, check_step_sizes, closed_form_grads, conserved, dynamics_study,
                       equilibrium, flat, gd_step, gradient_descent, init_params, link_fns, loss,
                       make_problem, predicted_increments, sharpness, solver_equilibrium,
                       solver_grads, unflat)  # noqa: F401
from .dynamics_report import (LINK_TITLES, dynamics_figure, dynamics_summary, outside_figure,
                              outside_runs, run_summary)  # noqa: F401
