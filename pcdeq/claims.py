"""The paper's claims, each checked against a measured number (``notebooks/claims.ipynb``).

Two kinds of evidence:

* trained models (the ``reference_weights`` of a profile, ``results/<profile>/.../seed0.pt``):
  :func:`uniqueness` runs the fixed-point iteration of every DEQ layer from 0 and from random
  nonnegative starts, :func:`convergence_rate` fits the geometric rate of the residual trace,
  :func:`invariants` measures min W, min x and the activation's shape (:func:`model_evidence`,
  with Figure 15's scaled study; measured once per profile by ``python -m pcdeq evidence`` into
  ``<root>/model_evidence.json``, which :func:`load_evidence` reads back);
* run records (``results/<profile>/``): σ_max(W) per epoch (Figure 4), iterations per epoch
  (Figure 3, "iterations do not increase"), accuracy beside monDEQ (Tables 1-3).

Every verdict is computed by :func:`verdict` (or, for a claim judged by 95% intervals, by
:func:`decided`: holds, does not hold, or undecided while an interval straddles its threshold)
from a measured value and a threshold stated in :data:`THRESHOLDS`; evidence that is missing
gives "not testable here" with what is missing.

The code, by seam, is the package :mod:`pcdeq.paper_claims` (the claim and its thresholds, the
evidence sources, the fixed points of a model, the claims from models and from records, the
table); every public name is importable from here.
"""

from .paper_claims.claim import (FAILS, HOLDS, THRESHOLDS, UNDECIDED, UNTESTABLE, Claim, decided,
                                 untestable, verdict)
from .paper_claims.fixed_points import (PAIRINGS, Invariants, LayerProblem, Rate, Uniqueness,
                                        convergence_rate, invariants, layer_problems,
                                        test_images, uniqueness)
from .paper_claims.from_models import (EVIDENCE_FILE, EvidenceMissing, ModelEvidence,
                                       claims_from_models, format_distance, load_evidence,
                                       model_evidence, remeasure_hint, save_evidence,
                                       training_invariants)
from .paper_claims.from_records import (NOT_HERE, Growth, claim_accuracy, claim_iterations_flat,
                                        claim_numerical_stability, claim_sigma_max,
                                        claim_sigmoid_iters, claims_from_records, growth,
                                        windows)
from .paper_claims.multiscale import claim_lipschitz_mdeq
from .paper_claims.sources import Source, load_sources
from .paper_claims.table import ORDER, ClaimsTable, claims_table, summary_table
from .stats import welch_interval

__all__ = ["EVIDENCE_FILE", "EvidenceMissing", "FAILS", "HOLDS", "NOT_HERE", "ORDER", "PAIRINGS", "THRESHOLDS", "UNTESTABLE", "Claim",
           "ClaimsTable", "Growth", "Invariants", "LayerProblem", "ModelEvidence", "Rate",
           "Source", "Uniqueness", "claim_accuracy", "claim_lipschitz_mdeq", "claim_iterations_flat",
           "claim_numerical_stability", "claim_sigma_max", "claim_sigmoid_iters",
           "claims_from_models", "claims_from_records", "claims_table", "convergence_rate",
           "format_distance", "growth", "invariants", "layer_problems", "load_evidence", "load_sources",
           "model_evidence", "remeasure_hint", "save_evidence", "summary_table", "test_images", "training_invariants", "untestable",
           "uniqueness", "verdict", "welch_interval", "windows"]
