"""Part 2, report: Figure 14 and the summaries of a :class:`~pcdeq.theory.dynamics.DynamicsStudy`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import torch
from torch import Tensor

from ..hparams import ConfigError
from .maps import DTYPE, single_thread
from .geometry_report import title_lines
from .dynamics import DynamicsStudy, GDRun, LEAKY_SLOPE, gradient_descent

if TYPE_CHECKING:
    from matplotlib.figure import Figure


LINK_TITLES = {"linear": "linear DEQ, ŷ = vᵀz*",
               "tanh": "single-index DEQ, ŷ = tanh(vᵀz*)",
               "leaky_relu": f"single-index DEQ, ŷ = leaky ReLU(vᵀz*), slope {LEAKY_SLOPE:g}"}


def _log_marks(n: int, count: int = 14) -> Tensor:
    """About ``count`` indices in [1, n), spaced evenly on a log scale (marker positions)."""
    if n <= 2:
        return torch.arange(1, max(n, 1))
    idx = torch.unique(torch.logspace(0, math.log10(n - 1), count, dtype=DTYPE).round().long())
    return idx[idx < n]


def dynamics_figure(study: DynamicsStudy, profile: str = "quick") -> "Figure":
    """Figure 14: one row per model (linear, single-index tanh, single-index leaky ReLU);
    columns: loss per step (log), Q1 drift beside its prediction, Q2 drift beside its
    prediction, the final drift against the step size (log-log, slope 1 = "shrinks like
    eta"), and sigma_min(I - W). One colour per step size; runs outside the stable range
    dotted and labelled.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    s = study.settings
    links = list(study.runs)
    fig, axes = plt.subplots(len(links), 5, figsize=(20, 3.4 * len(links) + 1.3), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, link in enumerate(links):
        runs = study.runs[link]
        outside = [r for r in runs if not r.inside]
        col = "#b00000" if outside else "k"
        tag = f"\n{len(outside)} run(s) OUTSIDE THE THEOREM (dotted)" if outside else ""
        ax_loss, ax_q1, ax_q2, ax_eta, ax_sv = axes[i]
        for j, r in enumerate(runs):
            c = colors[j % len(colors)]
            ls = "-" if r.inside else ":"
            t = torch.arange(r.loss.numel())
            lab = f"η = {r.eta:g}" + ("" if r.inside else " OUTSIDE: η ≥ 2/λ_max")
            fit = r.fit()
            if fit is not None and not fit.exact:
                lab += f": rate {fit.rate:.4g}/step"
            if r.diverged_at is not None:
                lab += f", diverged at step {r.diverged_at}"
            keep = torch.isfinite(r.loss) & (r.loss > 0)
            ax_loss.semilogy(t[keep], r.loss[keep], ls, color=c, lw=1.2, label=lab)
            for ax, q, qp in ((ax_q1, r.q1, r.q1_pred), (ax_q2, r.q2, r.q2_pred)):
                d, dp = q - q[0], qp - qp[0]
                keep = torch.isfinite(d)
                keep[0] = False  # log x axis: from step 1
                ax.plot(t[keep], d[keep], ls, color=c, lw=1.4)
                m = _log_marks(int(keep.sum()) + 1)
                m = m[torch.isfinite(dp[m])]
                ax.plot(t[m], dp[m], "x", color=c, ms=4.5, mew=1.1)
            keep = torch.isfinite(r.sigma_min)
            ax_sv.plot(t[keep], r.sigma_min[keep], ls, color=c, lw=1.2)
        # Final drift against eta: measured (markers) and slope-1 reference.
        eta = torch.tensor([r.eta for r in runs], dtype=DTYPE)
        d1 = torch.tensor([r.drift()[0] for r in runs], dtype=DTYPE)
        d2 = torch.tensor([r.drift()[1] for r in runs], dtype=DTYPE)
        for vals, mk, name in ((d1, "o", "$Q_1(T) - Q_1(0)$"),
                               (d2.abs(), "s", "$|Q_2(T) - Q_2(0)|$")):
            ax_eta.loglog(eta, vals, mk + "-", color="k" if mk == "o" else "0.5", ms=5, lw=1,
                          label=name + " measured")
            ref = vals[0] * eta / eta[0]
            ax_eta.loglog(eta, ref, "--", color="k" if mk == "o" else "0.5", lw=0.8,
                          label=name + " ∝ η (slope 1)")
        for j, r in enumerate(runs):
            ax_eta.plot([r.eta], [d1[j]], "o", color=colors[j % len(colors)], ms=5, zorder=5)
        ax_loss.set_title(f"{LINK_TITLES[link]}\nloss per step (log): linear convergence{tag}",
                          fontsize=8, color=col)
        ax_loss.set_ylabel("loss", fontsize=8)
        ax_loss.legend(fontsize=6, loc="lower left")
        ax_q1.set_title(r"drift of $Q_1 = \|U\|_F^2 + \|I - W\|_F^2$" "\n"
                        r"line: measured; x: predicted $\Sigma_t\, \eta^2(\|\nabla_W\|^2 + "
                        r"\|\nabla_U\|^2)$", fontsize=8, color=col)
        ax_q1.set_ylabel(r"$Q_1(t) - Q_1(0)$", fontsize=8)
        ax_q1.set_yscale("log")
        ax_q2.set_title(r"drift of $Q_2 = \|v\|^2 - \|U\|_F^2$" "\n"
                        r"line: measured; x: predicted $\Sigma_t\, \eta^2(\|\nabla_v\|^2 - "
                        r"\|\nabla_U\|^2)$", fontsize=8, color=col)
        ax_q2.set_ylabel(r"$Q_2(t) - Q_2(0)$", fontsize=8)
        for ax in (ax_q1, ax_q2):
            ax.set_xscale("log")
        ax_q1.legend(handles=[Line2D([], [], color="k", lw=1.4, label="measured"),
                              Line2D([], [], color="k", marker="x", lw=0, label="predicted")]
                     + [Line2D([], [], color=colors[j % len(colors)], lw=1.4,
                               label=f"η = {r.eta:g}") for j, r in enumerate(runs)],
                     fontsize=6, loc="upper left")
        from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator
        ax_eta.xaxis.set_major_locator(FixedLocator([float(e) for e in eta]))
        ax_eta.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
        ax_eta.xaxis.set_minor_locator(NullLocator())
        ax_eta.yaxis.set_minor_formatter(NullFormatter())
        ax_eta.set_title("drift after training vs step size\n(shrinks like η; dashed: slope 1)",
                         fontsize=8, color=col)
        ax_eta.set_xlabel("step size η", fontsize=8)
        ax_eta.set_ylabel("drift at the last step", fontsize=8)
        ax_eta.legend(fontsize=6, loc="upper left")
        fin = [r.sigma_min[torch.isfinite(r.sigma_min)] for r in runs]
        lo = min(float(f.min()) for f in fin)
        ax_sv.set_ylim(0, max(1.05, 1.1 * max(float(f.max()) for f in fin)))
        ax_sv.axhline(lo, color="k", lw=0.6, ls="--")
        ax_sv.text(0.98, lo, f"min over runs {lo:.3g}", ha="right", va="bottom", fontsize=7,
                   transform=ax_sv.get_yaxis_transform())
        ax_sv.set_title(r"$\sigma_{\min}(I - W)$ during training" "\n"
                        "well-conditioned: bounded away from 0", fontsize=8, color=col)
        ax_sv.set_ylabel(r"$\sigma_{\min}(I - W)$", fontsize=8)
        for j, ax in enumerate(axes[i]):
            if j != 3:
                ax.set_xlabel("gradient-descent step" + (" (log)" if j in (1, 2) else ""),
                              fontsize=8)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
    fig.suptitle(title_lines(
        "Figure 14: gradient descent on linear and single-index DEQs (the setting of "
        "Dandapanthula & Ramdas 2025) -- SYNTHETIC ILLUSTRATION of the theory, not trained "
        "pcDEQ models.",
        f"z* = (I - W)⁻¹Ux, squared loss, y = φ(βᵀx) with a unit β, x ~ N(0, I), n = {s.n}, "
        f"d = {s.d}, k = {s.k}; W0 ~ {s.w_scale:g}·N(0, 1), "
        f"U0 ~ {s.u_scale:g}·N(0, 1), "
        f"v0 ~ {s.v_scale:g}·N(0, 1); seed {s.seed}; {s.steps} full-batch steps per "
        f"run; η in {{{', '.join(f'{e:g}' for e in s.step_sizes)}}}. The conserved "
        "quantities and their exact per-step increase are our derivation from the model's "
        f"scaling symmetries (not the paper's text). Profile-independent ({profile} run).",
        width=210), fontsize=8.5)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def outside_runs(study: DynamicsStudy, factors: Sequence[float], steps: int | None = None
                 ) -> dict[str, list[GDRun]]:
    """Runs per model at eta = factor * 2 / lambda_max(Hessian at the initialization) for
    each factor, i.e. outside the stable range when factor >= 1 (their checks say so).

    Args:
        study: the in-range study (its problems and initialization are reused).
        factors: multiples of the stable limit 2 / lambda_max.
        steps: GD steps (default: the study's).

    Returns:
        link -> one run per factor.

    Raises:
        ConfigError: a factor that is not a positive number.
    """
    for f in factors:
        if not (isinstance(f, (int, float)) and math.isfinite(f) and f > 0):
            raise ConfigError(f"outside_factors must be positive numbers, got {f!r}")
    out = {}
    with single_thread():
        for link, prob in study.problems.items():
            lam = study.runs[link][0].check.sharpness
            out[link] = gradient_descent(prob, study.inits[link], [f * 2 / lam for f in factors],
                                         steps or study.settings.steps)
    return out


def outside_figure(study: DynamicsStudy, outside: dict[str, list[GDRun]],
                   profile: str = "quick") -> "Figure":
    """Beside Figure 14: the loss and the Q1 drift of each model at step sizes beyond the
    stable range, against the largest in-range step size of the study. Panels with runs
    outside the range are titled "OUTSIDE THE THEOREM".

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    links = list(outside)
    fig, axes = plt.subplots(2, len(links), figsize=(4.8 * len(links), 6.8), squeeze=False)
    reds = ("#b00000", "#ff7f0e", "#9467bd", "#8c564b")
    for j, link in enumerate(links):
        ref = max((r for r in study.runs[link] if r.inside), key=lambda r: r.eta, default=None)
        runs = [(ref, "#1f77b4", "-")] if ref is not None else []
        runs += [(r, reds[i % len(reds)], ":" if not r.inside else "--")
                 for i, r in enumerate(outside[link])]
        for r, c, ls in runs:
            t = torch.arange(r.loss.numel())
            tag = (f" = {r.eta * r.check.sharpness / 2:.3g} x 2/λ_max" +
                   ("" if r.inside else " OUTSIDE"))
            end = f", diverged at step {r.diverged_at}" if r.diverged_at is not None else ""
            keep = torch.isfinite(r.loss) & (r.loss > 0)
            axes[0][j].semilogy(t[keep], r.loss[keep], ls, color=c, lw=1.4,
                                label=f"η = {r.eta:.3g}{tag}{end}")
            d1 = (r.q1 - r.q1[0]).abs()
            keep = torch.isfinite(d1) & (d1 > 0)
            axes[1][j].semilogy(t[keep], d1[keep], ls, color=c, lw=1.4,
                                label=f"η = {r.eta:.3g}: final {abs(r.drift()[0]):.3g}")
        bad = [r for r in outside[link] if not r.inside]
        title = LINK_TITLES[link] + "\n" + (
            f"OUTSIDE THE THEOREM: η ≥ 2/λ_max = {bad[0].check.limit:.3g} "
            f"({len(bad)} run{'s' if len(bad) > 1 else ''}, dotted)" if bad
            else "every run inside the stable range")
        axes[0][j].set_title(title, fontsize=8, color="#b00000" if bad else "k")
        axes[0][j].set_ylabel("loss", fontsize=8)
        axes[1][j].set_title(r"$|Q_1(t) - Q_1(0)|$: how far the parameters leave the sphere",
                             fontsize=8)
        axes[1][j].set_ylabel(r"$|Q_1(t) - Q_1(0)|$", fontsize=8)
        for ax in axes[:, j]:
            ax.set_xlabel("gradient-descent step", fontsize=8)
            ax.legend(fontsize=6.5)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
    fig.suptitle(title_lines("Step sizes beyond the stable range η < 2/λ_max (Hessian at the "
                       "initialization) -- SYNTHETIC ILLUSTRATION, not trained models",
                       "Same data and initialization as Figure 14; blue: its largest step "
                       f"size. Profile-independent ({profile} run).", width=130),
                 fontsize=8.5)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def run_summary(r: GDRun) -> str:
    """One run in one line (4 significant digits; nothing at rounding-noise level).

    Args:
        r: the run.

    Returns:
        The line: rate, steps to a 1e12-fold loss reduction, drifts, the check of the
        prediction, the range of sigma_min(I - W); for a diverged run only where it stopped.
    """
    fit = r.fit()
    reach = r.steps_to(1e-12 * float(r.loss[0]))
    d1, d2 = r.drift()
    err = r.prediction_error()
    parts = [f"eta = {r.eta:.4g}"]
    if not r.inside:
        parts.append("OUTSIDE THE THEOREM")
    if r.diverged_at is not None:
        # Past this point the numbers are those of an overflow, not worth printing.
        parts.append(f"diverged at step {r.diverged_at} (loss above 1e6 x its initial value, "
                     "or I - W singular): stopped")
        return "; ".join(parts)
    if not r.inside and reach is None:
        # Beyond the stable step size, neither converging nor diverging: the iterates wander
        # chaotically and their digits depend on rounding, which differs between CPUs
        # (oneDNN/MKL kernels), so only what does not is printed.
        parts.append(f"loss not reduced 1e12-fold and no divergence in {len(r.loss) - 1} steps "
                     "(bounded, not converging; its values depend on rounding and are not printed)")
        return "; ".join(parts)
    if fit is not None and not fit.exact:
        parts.append(f"loss rate {fit.rate:.4g}/step")
    parts.append(f"loss/1e12 at step {reach}" if reach is not None else
                 "loss not reduced 1e12-fold")
    parts.append(f"dQ1 = {d1:.4g} (dQ1/eta = {d1 / r.eta:.4g})")
    parts.append(f"dQ2 = {d2:.4g} (dQ2/eta = {d2 / r.eta:.4g})")
    parts.append("Q = Q(0) + sum of predicted steps: "
                 + ("to < 1e-12" if err < 1e-12 else f"only to {err:.1e}"))
    sv = r.sigma_min[torch.isfinite(r.sigma_min)]
    parts.append(f"sigma_min(I - W) in [{float(sv.min()):.4g}, {float(sv.max()):.4g}]")
    return "; ".join(parts)


def dynamics_summary(study: DynamicsStudy) -> str:
    """The numbers behind Figure 14, as text with 4 significant digits (no rounding noise:
    only quantities far above float64's floor are printed).

    Args:
        study: the runs.

    Returns:
        One header line per model and one line per run (see :func:`run_summary`).
    """
    lines = []
    for link, runs in study.runs.items():
        lam = runs[0].check.sharpness
        q1, q2 = (float(q[0]) for q in (runs[0].q1, runs[0].q2))
        lines.append(f"{LINK_TITLES[link]}: initial loss {float(runs[0].loss[0]):.4g}; "
                     f"Q1(0) = {q1:.4g}, Q2(0) = {q2:.4g}; lambda_max(Hessian at init) = "
                     f"{lam:.4g}, stable range eta < {2 / lam:.4g}")
        for r in runs:
            lines.append("  " + run_summary(r))
            if not r.inside:
                lines.append(f"    {r.check.message}")
    return "\n".join(lines)
