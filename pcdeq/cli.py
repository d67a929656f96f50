"""Command line: ``python -m pcdeq {train,bench,list,data,evidence,compare,gpu-check}``."""

from __future__ import annotations

import argparse
import sys

from .hparams import (DATASETS, METHOD_FAMILIES, PAPER_DATASET_NAMES, ConfigError,
                      baseline_methods, paper_methods)
from .layers import JR_PROB, JR_WEIGHT, LIP_BOUND
from .record import RecordError


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s}")
    return v


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train one model and write a JSON run record",
                       description="Train one (dataset, method, seed) run. Hyperparameters default to the "
                                   "paper's (pcdeq/hparams.py). Rerunning the same command resumes an "
                                   "interrupted run from its last finished epoch.")
    p.add_argument("--dataset", required=True, help=f"one of: {', '.join(DATASETS)}")
    p.add_argument("--method", required=True,
                   help="e.g. pcDEQ-1-L-ReLU6, pcDEQ-2-SC-Sigmoid, pcDEQ-1-MC-Tanh*, monDEQ-L, DEQ-L-Tanh, "
                        "DEQ-JR-SC-Tanh, LipDEQ-MC-ReLU (python -m pcdeq list)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="path of the JSON run record (checkpoint: OUT.ckpt)")
    p.add_argument("--weights", help="also write the final weights here (pcdeq.train.load_trained reads them)")
    p.add_argument("--epochs", type=_positive_int, help="shorten (or lengthen) the run")
    p.add_argument("--lr", type=float)
    p.add_argument("--tol", type=float, help="solver tolerance (paper: 1e-4)")
    p.add_argument("--max-iter", type=_positive_int, help="solver iteration cap (paper: 200)")
    p.add_argument("--solver", help="fixed-point solver: fixed_point (the paper's), anderson or broyden "
                                    "(pcdeq.SOLVERS; not for monDEQ / MDEQ / LipMDEQ, which have their own)")
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--jr-weight", type=float, help=f"DEQ-JR: weight gamma of ||J||_F^2/d (default {JR_WEIGHT})")
    p.add_argument("--jr-prob", type=float, help=f"DEQ-JR: probability of a regularized step (default {JR_PROB})")
    p.add_argument("--lip-bound", type=float, help=f"LipDEQ: c in ||W||_2 <= c < 1 (default {LIP_BOUND})")
    # The Lipschitz MDEQ's cap mode is part of its method name (one name per run): the flag a
    # reader of its paper may look for is answered, not silently ignored.
    p.add_argument("--lip-mode", help=argparse.SUPPRESS)
    p.add_argument("--train-limit", type=_positive_int, help="use only the first N training images")
    p.add_argument("--test-limit", type=_positive_int, help="use only the first N test images")
    p.add_argument("--data-root", default="data")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines, no progress bar")


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="time training steps of L and SC models against their convolution floor")
    p.add_argument("--steps", type=_positive_int, default=8, help="timed steps per model")
    p.add_argument("--threads", type=_positive_int)
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", default="data")
    p.add_argument("--no-epoch", action="store_true", help="skip the full-epoch timing")
    p.add_argument("--only", help="time only the models whose name contains this text, e.g. SC")
    p.add_argument("--solvers", action="store_true",
                   help="compare fixed_point, anderson and broyden on pcDEQ L / SC / MC (same tol)")


def _add_evidence(sub) -> None:
    p = sub.add_parser("evidence", help="measure the trained models of a results folder (the claims "
                                        "C1, C2, C7 and Figure 15's scaled study) and write them as JSON",
                       description="Run the fixed-point checks of the claims table and the scaled study "
                                   "of Figure 15 on the weights in DIR (one thread, float64) and write "
                                   "them to OUT, which the claims notebook and Figure 15 read.")
    p.add_argument("--profile", required=True, help="the profile the weights belong to (captions)")
    p.add_argument("--dir", required=True, help="the results folder: DIR/<dataset>/<method>/seed0.pt")
    p.add_argument("--weights", nargs="*", help="only these weight files (default: every seed*.pt in DIR)")
    p.add_argument("--data-root", default="data", help="data sets, for test images not in DIR/claims_inputs/")
    p.add_argument("--out", help="default: DIR/model_evidence.json")


def _evidence(args) -> int:
    from pathlib import Path

    import torch

    from . import claims
    torch.set_num_threads(1)  # the same reduction order wherever it runs
    root = Path(args.dir)
    if not root.is_dir():
        raise ConfigError(f"--dir {root}: no such folder; name a results folder such as results/quick")
    missing = [w for w in (args.weights or []) if not Path(w).is_file()]
    if missing:
        raise ConfigError(f"--weights: no such file: {', '.join(missing)} (train it first, or "
                          f"leave --weights out to measure every seed*.pt in {root}/)")
    outside = [w for w in (args.weights or []) if not Path(w).is_relative_to(root)]
    if outside:
        raise ConfigError(f"--weights: not inside --dir {root}: {', '.join(outside)} (the evidence "
                          f"names each file by its path below --dir; spell both alike, e.g. "
                          f"--dir results/quick --weights results/quick/mnist5k/...)")
    src = claims.Source.load(args.profile, root, args.weights)
    ev = claims.model_evidence(src, data_root=args.data_root)  # the claims' default settings
    out = Path(args.out) if args.out else root / claims.EVIDENCE_FILE
    claims.save_evidence(ev, out)
    n = 0 if ev.scaled is None else len(ev.scaled.series)
    print(f"{len(ev.models)} models, {len(ev.uniqueness)} DEQ layers, {n} scaled series"
          + (f"; skipped: {ev.missing}" if ev.missing else "") + f" -> {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["compare"]:  # its own parser: python -m pcdeq compare --help
        from .compare import main as compare_main
        return compare_main(argv[1:])
    if argv[:1] == ["gpu-check"]:  # its own parser: python -m pcdeq gpu-check --help
        from .gpu_check import main as gpu_check_main
        return gpu_check_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m pcdeq", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    _add_train(sub)
    _add_bench(sub)
    _add_evidence(sub)
    sub.add_parser("list", help="list the datasets, the method families and their methods")
    p = sub.add_parser("data", help="make sure a dataset is on disk (download it when online) "
                                    "and print its statistics as JSON")
    p.add_argument("--dataset", required=True, help=f"one of: {', '.join(DATASETS)}")
    p.add_argument("--data-root", default="data")
    sub.add_parser("compare", help="compare fresh run records with the reference records "
                                   "(reproducibility check; python -m pcdeq compare --help)")
    sub.add_parser("gpu-check", help="train one method per family and architecture on the GPU for "
                                     "a few epochs and compare with the committed CPU records "
                                     "(python -m pcdeq gpu-check --help)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "list":
            print("datasets:", ", ".join(DATASETS))
            print("\nmethod families (names: python -m pcdeq train --method NAME):")
            for f in METHOD_FAMILIES.values():
                print(f"  {f.pattern():58s} {f.summary}")
            print("\nthe paper's methods (Tables 1-3):")
            for fam, methods in paper_methods().items():
                print(f"  {PAPER_DATASET_NAMES[fam]}:", ", ".join(methods))
            print("\nstable-DEQ baselines (Table 8):")
            for fam in PAPER_DATASET_NAMES:
                print(f"  {PAPER_DATASET_NAMES[fam]}:", ", ".join(baseline_methods(fam)))
            return 0
        if args.cmd == "data":
            import json

            from .data import dataset_stats
            print(json.dumps(dataset_stats(args.dataset, args.data_root), indent=1))
            return 0
        if args.cmd == "evidence":
            return _evidence(args)
        if args.cmd == "bench":
            from .bench import run_bench
            run_bench(steps=args.steps, threads=args.threads, device=args.device,
                      data_root=args.data_root, epoch=not args.no_epoch, only=args.only,
                      solvers=args.solvers)
            return 0
        from .train import NonFiniteLoss, RunConfig, train
        if args.lip_mode is not None:
            raise ConfigError(
                f"--lip-mode {args.lip_mode}: the Lipschitz multiscale DEQ's cap mode is part of "
                f"its method name: --method LipMDEQ-MS (as published) or LipMDEQ-cert-MS "
                f"(certified); no other family has a mode")
        cfg = RunConfig(dataset=args.dataset, method=args.method, seed=args.seed, out=args.out,
                        epochs=args.epochs, lr=args.lr, tol=args.tol, max_iter=args.max_iter,
                        batch_size=args.batch_size, jr_weight=args.jr_weight, jr_prob=args.jr_prob,
                        lip_bound=args.lip_bound, solver=args.solver, train_limit=args.train_limit,
                        test_limit=args.test_limit, data_root=args.data_root, device=args.device,
                        threads=args.threads, weights=args.weights,
                        progress=False if args.quiet else None,
                        log=not args.quiet)
        try:
            rec = train(cfg)
        except NonFiniteLoss as e:
            print(f"error: {e}; stopped. The record {args.out} keeps the finished epochs "
                  f"(status 'diverged'). Try a smaller --lr.", file=sys.stderr)
            return 3
        last = rec.epochs[-1]
        print(f"{rec.method} on {rec.dataset} seed {rec.seed}: final test acc "
              f"{last.test_acc:.2f}% after {last.epoch} epochs -> {args.out}")
        return 0
    except (ConfigError, RecordError) as e:  # bad input, or a record evidence cannot read
        print(f"error: {e}", file=sys.stderr)
        return 2
