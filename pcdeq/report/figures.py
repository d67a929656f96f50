"""Figures 2-4, 8-12 and 16 as byte-stable PDF + PNG, and the numbers behind each figure's claim."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..files import atomic_savefig
from ..hparams import ALL_ACTIVATIONS, FAMILY_GROUPS, PAPER_DATASET_NAMES, parse_method
from .artifacts import artifact_paths
from .paths import ALL_ARCHS, FAMILIES, arch_key
from .records import Run, artifact_title, caption, curve, select_runs, summarize

# ------------------------------------------------------------------------------- figures
# Fixed colours per activation so every figure reads the same way.
COLORS = {"ReLU6": "#1f77b4", "Tanh": "#ff7f0e", "Softsign": "#2ca02c", "Sigmoid": "#d62728"}
METRICS = {"test_acc": "test accuracy [%]", "fwd_iters": "forward iterations",
           "bwd_iters": "backward iterations", "test_fwd_iters": "test forward iterations",
           "sigma_max": r"$\sigma_{\max}(W)$", "jac_norm": r"$\|J_f(z^*)\|_2$"}


# The stable-DEQ figures (11, 12): colour by family, line style by activation.
GROUP_COLORS = {"pcDEQ": "#1f77b4", "monDEQ": "#d62728", "DEQ": "#ff7f0e", "DEQ-JR": "#2ca02c",
                "LipDEQ": "#9467bd", "MDEQ": "#8c564b", "LipMDEQ": "#e377c2"}
# Families that share a group colour with another family of the same figure.
FAMILY_COLORS = {"LipMDEQ-cert": "#17becf"}
LINESTYLES = {"ReLU6": "-", "Tanh": "--", "Softsign": ":", "Sigmoid": "-.",
              "ReLU": (0, (5, 1, 1, 1))}


@dataclass(frozen=True)
class Panel:
    title: str
    runs: tuple[Run, ...]
    metric: str
    by_family: bool = False  # lines per method across families (Figures 11, 12)


def _label(method: str) -> str:
    m = parse_method(method)
    return m.activation + (" (pcDEQ-2)" if m.variant == 2 else "")


def _style(method: str, by_family: bool) -> tuple[str, object, str]:
    """(colour, line style, legend label) of a method's line."""
    m = parse_method(method)
    if by_family:  # the architecture is in the panel's title
        color = FAMILY_COLORS.get(m.family, GROUP_COLORS[m.group])
        return color, LINESTYLES[m.activation], f"{m.family} {m.activation}"
    return COLORS[m.activation], "-", _label(method)


def _line_order(method: str) -> tuple[int, int]:
    m = parse_method(method)
    return FAMILY_GROUPS.index(m.group), ALL_ACTIVATIONS.index(m.activation)


def _family_title(runs: Sequence[Run], family: str, extra: str = "") -> str:
    ds = sorted({r.dataset for r in runs if r.family == family})
    name = "Fashion-MNIST" if ds == ["fashion_mnist"] else PAPER_DATASET_NAMES[family]
    synthetic = any(r.data["synthetic"] for r in runs if r.family == family)
    where = f"{name}" + (f" [{', '.join(ds)}]" if ds and ds not in ([family], ["fashion_mnist"]) else "")
    if synthetic:
        where += " SYNTHETIC"
    return where + (f" {extra}" if extra else "")


def _panels(name: str, runs: Sequence[Run]) -> list[list[Panel]]:
    """The grid of panels of one figure (rows of columns)."""
    def pick(family: str, arch: str) -> tuple[Run, ...]:
        return tuple(r for r in runs if r.family == family and r.arch == arch)

    # A profile that trains some families only (fashion: MNIST-shaped data) gets their panels.
    families = [f for f in FAMILIES if pick(f, "SC")] or list(FAMILIES)
    if name == "fig2_sc_accuracy":
        return [[Panel(_family_title(runs, f, "SC"), pick(f, "SC"), "test_acc") for f in families]]
    if name == "fig3_sc_iterations":
        return [[Panel(_family_title(runs, f, f"SC, {kind}"), pick(f, "SC"), metric)
                 for f in families] for kind, metric in (("forward", "fwd_iters"),
                                                         ("backward", "bwd_iters"))]
    if name == "fig4_sigma_max":
        return [[Panel(_family_title(runs, "mnist", "L"), pick("mnist", "L"), "sigma_max")]]
    if name in ("fig11_stable_deq_iterations", "fig12_stable_deq_sigma_max"):
        # Only where a baseline was trained: pcDEQ alone has Figures 2-4 and 8-10.
        where = sorted({(r.family, r.arch) for r in runs if r.group != "pcDEQ"},
                       key=lambda fa: (FAMILIES.index(fa[0]), ALL_ARCHS.index(fa[1])))
        if name == "fig12_stable_deq_sigma_max":
            where = [fa for fa in where if fa[1] == "L"] or [("mnist", "L")]
            return [[Panel(_family_title(runs, f, a), pick(f, a), "sigma_max", True) for f, a in where]]
        where = where or [("mnist", "L")]
        return [[Panel(_family_title(runs, f, a), pick(f, a), metric, True)
                 for metric in ("test_acc", "fwd_iters", "bwd_iters")] for f, a in where]
    if name == "fig16_multiscale":
        where = sorted({r.family for r in runs if r.arch == "MS"}, key=FAMILIES.index) or ["mnist"]
        return [[Panel(_family_title(runs, f, "MS"), pick(f, "MS"), metric, True)
                 for metric in ("test_acc", "fwd_iters", "bwd_iters", "jac_norm")] for f in where]
    rows = {"fig8_mnist_curves": [("mnist", "L"), ("mnist", "MC")],
            "fig9_svhn_curves": [("svhn", "MC")],
            "fig10_cifar10_curves": [("cifar10", "MC"), ("cifar10", "MC*")]}[name]
    return [[Panel(_family_title(runs, f, a), pick(f, a), metric)
             for metric in ("test_acc", "fwd_iters", "bwd_iters")] for f, a in rows]


def make_figure(name: str, runs: Sequence[Run], profile: str):
    """Draw one of Figures 2, 3, 4, 8-12, 16 from the runs; mean line and min-max band.

    The suptitle states the figure, the profile and the data (real or synthetic).
    """
    import matplotlib.pyplot as plt

    runs = select_runs(runs, name)
    grid = _panels(name, runs)
    shown = {r.path: r for row in grid for panel in row for r in panel.runs}
    runs = sorted(shown.values(), key=lambda r: r.path)  # the caption states what is drawn
    nrows, ncols = len(grid), len(grid[0])
    by_family = grid[0][0].by_family
    width = max(4.2 * ncols, 7.0) if by_family else 4.2 * ncols  # room for the family legend
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, 3.0 * nrows + 1.1), squeeze=False)
    for i, row in enumerate(grid):
        for j, panel in enumerate(row):
            ax = axes[i][j]
            _draw_panel(ax, panel)
    handles, labels = [], []
    for ax in axes.flat:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    ncol = min(len(labels), 6, max(2, int(width // 1.7)))
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False, fontsize=8)
    fig.suptitle(f"{artifact_title(name, runs)}\n{_wrap(caption(profile, runs), 40 * ncols)}",
                 fontsize=8)
    # Room below the axes for the x label and every row of the legend.
    bottom = (0.3 + 0.2 * -(-len(labels) // ncol)) / fig.get_figheight() if handles else 0.05
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap
    return "\n".join(textwrap.wrap(text, width=max(width, 60)))


def _draw_panel(ax, panel: Panel) -> None:
    ax.set_title(panel.title, fontsize=9)
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_ylabel(METRICS[panel.metric], fontsize=8)
    ax.tick_params(labelsize=7)
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    drawn = False
    by_method: dict[str, list[Run]] = {}
    for r in panel.runs:
        by_method.setdefault(r.method, []).append(r)
    for method in sorted(by_method, key=_line_order):
        color, ls, label = _style(method, panel.by_family)
        c = curve(by_method[method], panel.metric, label)
        if c is None:
            continue
        ax.plot(c.epochs, c.mean, color=color, ls=ls, lw=1.4,
                marker="o" if len(c.epochs) < 12 else None, ms=3, label=c.label)
        if c.n > 1:
            ax.fill_between(c.epochs, c.lo, c.hi, color=color, alpha=0.12 if panel.by_family else 0.2,
                            lw=0)
        drawn = True
    if panel.metric == "sigma_max" and drawn:
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        for c in sorted({r.hparams["lip_bound"] for r in panel.runs if "lip_bound" in r.hparams}):
            ax.axhline(c, color=GROUP_COLORS["LipDEQ"], lw=0.8, ls=":")
            ax.text(1, c, f" LipDEQ bound c = {c:g}", color=GROUP_COLORS["LipDEQ"], fontsize=7,
                    va="bottom")
    if panel.metric == "jac_norm" and drawn:
        ax.axhline(1.0, color="k", lw=0.8, ls="--")  # below it: a contraction at z*
        ax.set_yscale("log")
    if not drawn:
        ax.text(0.5, 0.5, "no runs in this profile", ha="center", va="center",
                transform=ax.transAxes, fontsize=8)
    ax.grid(alpha=0.3)


def save_figure(fig, out_dir: str | Path, name: str) -> list[Path]:
    """Save ``<out_dir>/<name>.pdf`` and ``.png`` byte-stably (no dates, no version strings,
    fixed hash salt), so rerunning on the same records reproduces identical files."""
    import matplotlib

    pdf, png = artifact_paths("figure", name, out_dir)
    with matplotlib.rc_context({"svg.hashsalt": "pcdeq", "pdf.compression": 6}):
        atomic_savefig(fig, pdf, metadata={"CreationDate": None, "ModDate": None, "Producer": None,
                                           "Creator": None})
        atomic_savefig(fig, png, dpi=150, metadata={"Software": None})
    return [pdf, png]


def figure_summary(name: str, runs: Sequence[Run]) -> str:
    """The numbers behind a figure's claims in the paper, as text (observed, not asserted)."""
    runs = [r for r in select_runs(runs, name) if r.status == "complete"]
    lines = []
    if name in ("fig4_sigma_max", "fig12_stable_deq_sigma_max"):
        lines.append("Paper: ReLU6 keeps sigma_max < 1 for the whole training; tanh, softsign, "
                     "sigmoid exceed 1 most of the time. Observed here (all seeds, all epochs):"
                     if name == "fig4_sigma_max" else
                     "pcDEQ needs no contraction, LipDEQ is one by construction (sigma_max <= c). "
                     "Observed here (all seeds, all epochs):")
        for method in sorted({r.method for r in runs}, key=_line_order):
            vals = [v for r in runs if r.method == method for v in r.series("sigma_max")
                    if v is not None]
            if vals:
                below = sum(v < 1 for v in vals) / len(vals)
                lines.append(f"  {method:22s} sigma_max in [{min(vals):.3f}, {max(vals):.3f}], "
                             f"below 1 in {100 * below:.0f}% of epochs")
        return "\n".join(lines)
    if name == "fig11_stable_deq_iterations":
        lines.append("The paper: pcDEQ's iterations do not grow during training, those of standard "
                     "DEQs and monDEQ do. Observed here, mean over seeds, first -> last epoch "
                     "(last / first):")
        for s in sorted(summarize(runs), key=lambda s: (s.dataset, ALL_ARCHS.index(arch_key(s.method)),
                                                        _line_order(s.method))):
            rs = [r for r in runs if r.dataset == s.dataset and r.method == s.method]
            parts = []
            for metric in ("fwd_iters", "bwd_iters"):
                c = curve(rs, metric, s.method)
                if c is not None:
                    parts.append(f"{metric} {c.mean[0]:.1f} -> {c.mean[-1]:.1f} "
                                 f"(x{c.mean[-1] / c.mean[0]:.2f})")
            c = curve(rs, "test_acc", s.method)
            if c is not None:
                parts.append(f"test_acc {c.mean[-1]:.2f}")
            lines.append(f"  {s.dataset:9s} {s.method:22s} " + "; ".join(parts))
        return "\n".join(lines)
    if name == "fig16_multiscale":
        lines.append("Realised Lipschitz constant ||J_f(z*)||_2 (first test batch) per method, "
                     "over seeds and epochs, with the iterations first -> last epoch (mean over "
                     "seeds):")
        for s in sorted(summarize(runs), key=lambda s: (s.dataset, _line_order(s.method))):
            rs = [r for r in runs if r.dataset == s.dataset and r.method == s.method]
            jac = [v for r in rs for v in r.series("jac_norm") if v is not None]
            parts = [f"||J|| in [{min(jac):.3g}, {max(jac):.3g}], >= 1 in "
                     f"{sum(v >= 1 for v in jac)}/{len(jac)} epochs"] if jac else []
            for metric in ("fwd_iters", "bwd_iters", "test_acc"):
                c = curve(rs, metric, s.method)
                if c is not None:
                    parts.append(f"{metric} {c.mean[0]:.2f} -> {c.mean[-1]:.2f}")
            lines.append(f"  {s.dataset:17s} {s.method:22s} " + "; ".join(parts))
        return "\n".join(lines)
    metrics = ("test_acc",) if name == "fig2_sc_accuracy" else (
        ("fwd_iters", "bwd_iters") if name == "fig3_sc_iterations" else
        ("test_acc", "fwd_iters", "bwd_iters"))
    if name == "fig3_sc_iterations":
        lines.append("Paper: sigmoid needs fewer than 8 iterations; the counts do not grow "
                     "during training. Observed here (mean over seeds):")
    else:
        lines.append("Mean over seeds, first -> last epoch (max over epochs):")
    for s in summarize(runs):
        rs = [r for r in runs if r.dataset == s.dataset and r.method == s.method]
        parts = []
        for metric in metrics:
            c = curve(rs, metric, s.method)
            if c is not None:
                parts.append(f"{metric} {c.mean[0]:.2f} -> {c.mean[-1]:.2f} "
                             f"(max {max(c.mean):.2f})")
        lines.append(f"  {s.dataset:17s} {s.method:22s} " + "; ".join(parts))
    return "\n".join(lines)

