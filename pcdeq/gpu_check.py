"""``python -m pcdeq gpu-check``: the CUDA path against committed CPU records, in minutes.

On a machine with a CUDA GPU it trains a few epochs of one method per family and architecture
(:data:`CASES`: pcDEQ, monDEQ, DEQ, DEQ-JR, LipDEQ on L, SC, MC; monDEQ has no MC) on the
shipped ``mnist5k``, seeds :data:`SEEDS`, with the sizes of :data:`SIZES`, under the
deterministic settings of the README (``CUBLAS_WORKSPACE_CONFIG=:4096:8``,
``torch.use_deterministic_algorithms(True)``, ``torch.backends.cudnn.benchmark = False``),
writes the run records into ``--out`` (default ``runs/gpu-check/``), compares them with the
committed CPU records of the same runs (``tests/data/gpu_check/cpu/``) by
:func:`pcdeq.compare.compare` with the tolerances measured on those records (the seed
distribution: a GPU run may differ from the CPU run by rounding, not by more than a change of
seed), and prints the comparison and a table of seconds per training epoch per method, GPU
against the CPU reference, with the speed-up. Exit status: the comparison's (0 within
tolerance, 1 a difference beyond it, 2 bad input), 1 if a run failed or diverged on the GPU,
and 2 at once, before any work, when torch sees no CUDA GPU.

It needs torch and pcdeq's core only (no Snakemake, Papermill, pandas or matplotlib), so it
runs on a GPU box with another torch version.

``--make-reference`` regenerates the CPU reference on a CPU, one ``python -m pcdeq train ...
--device cpu --threads 1`` per run (``--print-commands`` lists them); the sizes and seeds are
read from here, and a test checks that the committed records match them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .files import atomic_write_text
from .record import RecordError, RunRecord

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = REPO / "tests" / "data" / "gpu_check" / "cpu"
DEFAULT_DATA_ROOT = REPO / "data"
DEFAULT_OUT = Path("runs") / "gpu-check"
DATASET = "mnist5k"
SEEDS: tuple[int, ...] = (0, 1, 2)
REFERENCE_THREADS = 1  # the CPU reference: one thread (a fixed count: repeatable on its machine)
TIME_BUDGET_S = 360  # what the check should take on one modern GPU
CUBLAS_WORKSPACE = ":4096:8"
NO_CUDA_MESSAGE = ("error: no CUDA GPU visible to torch (torch.cuda.is_available() is False; "
                   "torch {torch}, built with CUDA {cuda}); the GPU check trains on the GPU and "
                   "compares with the committed CPU records: run this on a machine with a GPU")


@dataclass(frozen=True)
class Size:
    """How much of mnist5k a run uses, for how long, and its batch size (None: the method's
    protocol's)."""

    train_limit: int
    test_limit: int
    epochs: int
    batch_size: int | None = None


# Per architecture: small enough that the CPU reference takes minutes on one thread, large
# enough that the models learn (far from converged). The conv models take batches of 32, not
# their protocol's 64 (monDEQ: 128): at 64 several stayed at chance over 12 steps (e.g.
# pcDEQ-2-SC-Sigmoid 10.9%, LipDEQ-MC-ReLU 10.2% after 3 epochs), a weak comparison.
SIZES: dict[str, Size] = {"L": Size(1024, 512, 3), "SC": Size(256, 128, 3, 32),
                          "MC": Size(512, 256, 3, 32)}

# One method per family and architecture; the activations are the stable-DEQ baselines' (and
# cover pcDEQ-1 and pcDEQ-2).
CASES: tuple[str, ...] = (
    "pcDEQ-1-L-ReLU6", "pcDEQ-2-SC-Sigmoid", "pcDEQ-1-MC-Tanh",
    "monDEQ-L", "monDEQ-SC",
    "DEQ-L-Tanh", "DEQ-SC-Tanh", "DEQ-MC-Tanh",
    "DEQ-JR-L-Tanh", "DEQ-JR-SC-Tanh", "DEQ-JR-MC-Tanh",
    "LipDEQ-L-Tanh", "LipDEQ-SC-ReLU", "LipDEQ-MC-ReLU",
)


def case_size(method: str) -> Size:
    """The :class:`Size` of a case (by its architecture)."""
    from .hparams import parse_method
    return SIZES[parse_method(method).arch]


def planned_runs(methods: Sequence[str] = CASES, seeds: Sequence[int] = SEEDS) -> list[tuple[str, int]]:
    """(method, seed) of every run of the check, in the order they are trained."""
    return [(m, s) for m in methods for s in seeds]


def record_file(root: str | Path, method: str, seed: int) -> Path:
    """Where the record of (method, seed) lives under ``root`` (the results/ layout)."""
    from .report.paths import record_path
    return record_path(root, DATASET, method, seed)


def train_args(method: str, seed: int, root: str | Path, *, device: str, threads: int | None,
               data_root: str | Path) -> list[str]:
    """The arguments of ``python -m pcdeq`` that train one run of the check."""
    size = case_size(method)
    args = ["train", "--dataset", DATASET, "--method", method, "--seed", str(seed),
            "--out", str(record_file(root, method, seed)), "--epochs", str(size.epochs),
            "--train-limit", str(size.train_limit), "--test-limit", str(size.test_limit),
            "--data-root", str(data_root), "--device", device, "--quiet"]
    args += ["--batch-size", str(size.batch_size)] if size.batch_size is not None else []
    return args + (["--threads", str(threads)] if threads is not None else [])


def run_config(method: str, seed: int, root: str | Path, *, device: str, threads: int | None,
               data_root: str | Path):
    """The :class:`~pcdeq.train.RunConfig` of :func:`train_args` (what the CLI builds)."""
    from .train import RunConfig
    size = case_size(method)
    return RunConfig(dataset=DATASET, method=method, seed=seed,
                     out=str(record_file(root, method, seed)), epochs=size.epochs,
                     train_limit=size.train_limit, test_limit=size.test_limit,
                     batch_size=size.batch_size, data_root=str(data_root), device=device, threads=threads,
                     progress=False, log=False)


def _clear(path: Path) -> None:
    """Remove a run's record and checkpoint, so that the run is trained afresh."""
    from .train import checkpoint_path
    path.unlink(missing_ok=True)
    checkpoint_path(path).unlink(missing_ok=True)


# ------------------------------------------------------------------------- settings
def set_deterministic(warn_only: bool = False) -> None:
    """The README's settings for a repeatable GPU run (cudnn.deterministic is implied by
    the second; set for older torch). CUBLAS_WORKSPACE_CONFIG must be in the environment
    before cuBLAS starts: :func:`main` sets it first thing."""
    import torch
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def _tf32_state() -> str:
    import torch
    try:
        return (f"TF32 convolutions {'on' if torch.backends.cudnn.allow_tf32 else 'off'}, "
                f"TF32 matmul {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}")
    except AttributeError:  # pragma: no cover - a torch without the flags
        return "TF32 state unknown"


def environment_lines(device: str) -> list[str]:
    import torch
    lines = [f"torch {torch.__version__}, Python {sys.version.split()[0]}"]
    if device.startswith("cuda"):
        lines.append(f"GPU {torch.cuda.get_device_name(torch.device(device))} (CUDA {torch.version.cuda}, cuDNN "
                     f"{torch.backends.cudnn.version()}), {_tf32_state()}")
    lines.append(f"deterministic: CUBLAS_WORKSPACE_CONFIG={os.environ.get('CUBLAS_WORKSPACE_CONFIG')}, "
                 f"use_deterministic_algorithms={torch.are_deterministic_algorithms_enabled()}"
                 f"{' (warn only)' if torch.is_deterministic_algorithms_warn_only_enabled() else ''}, "
                 f"cudnn.benchmark={torch.backends.cudnn.benchmark}")
    return lines


# ------------------------------------------------------------------------- timing
def _median_seconds(path: Path, key: str = "seconds") -> float | None:
    try:
        rec = RunRecord.load(path)
    except RecordError:
        return None
    return rec.median(key)


def timing_table(reference: Path, fresh: Path, methods: Sequence[str], seeds: Sequence[int],
                 label: str = "GPU") -> str:
    """Markdown: per method, the median seconds per training epoch (the records' ``seconds``,
    over seeds and epochs: the first epoch's warm-up does not count) of the CPU reference and
    the fresh runs, and the speed-up; the fresh runs' evaluation seconds beside them."""
    def med(root: Path, m: str, key: str) -> float | None:
        vals = [v for s in seeds if (v := _median_seconds(record_file(root, m, s), key)) is not None]
        return statistics.median(vals) if vals else None

    def fmt(x: float | None, spec: str = ".3f") -> str:
        return "n/a" if x is None else format(x, spec)

    lines = [f"| method | CPU s / epoch | {label} s / epoch | speed-up | {label} eval s / epoch |",
             "|---|---|---|---|---|"]
    for m in methods:
        cpu, dev, ev = med(reference, m, "seconds"), med(fresh, m, "seconds"), med(fresh, m, "eval_seconds")
        up = f"{cpu / dev:.1f}x" if cpu and dev else "n/a"
        lines.append(f"| {m} | {fmt(cpu)} | {fmt(dev)} | {up} | {fmt(ev)} |")
    cpus = sorted({c for m in methods for s in seeds if (c := _cpu_of(record_file(reference, m, s)))})
    lines += ["", f"median over seeds and epochs of the training time per epoch (the record's "
                  f"`seconds`; the evaluation is apart). CPU: the committed reference, "
                  f"{REFERENCE_THREADS} thread, on {', '.join(cpus) or 'the machine that made it'} "
                  f"(a shared machine: its timings are indicative)."]
    return "\n".join(lines)


def _cpu_of(path: Path) -> str | None:
    try:
        return (RunRecord.load(path).environment or {}).get("cpu")
    except RecordError:
        return None


# ------------------------------------------------------------------------- the check
def _nondeterministic(e: BaseException) -> bool:
    return "does not have a deterministic implementation" in str(e)


def _subset(root: Path, runs: Sequence[tuple[str, int]], into: Path) -> Path:
    """A copy of the records of ``runs`` only (for --only / --seeds: the other cases' records,
    and those of an earlier full check in the same folder, stay out of the comparison)."""
    for m, s in runs:
        src, dst = record_file(root, m, s), record_file(into, m, s)
        if src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    return into


def run_check(*, out: Path, reference: Path, data_root: Path, methods: Sequence[str],
              seeds: Sequence[int], device: str, threads: int | None, warn_only: bool,
              tf32: bool, t_start: float) -> int:
    import torch

    from .compare import CompareError, Tolerances, compare, report_markdown
    from .train import NonFiniteLoss, train

    set_deterministic(warn_only)
    if not tf32 and device.startswith("cuda"):
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    label = "GPU" if device.startswith("cuda") else f"fresh {device.upper()}"
    print("# GPU check\n")
    print("\n".join(f"- {line}" for line in environment_lines(device)))
    runs = planned_runs(methods, seeds)
    print(f"- {len(runs)} runs: {len(methods)} methods x seeds {', '.join(map(str, seeds))} on "
          f"{DATASET}; sizes (train / test images, epochs): "
          + "; ".join(f"{a} {s.train_limit} / {s.test_limit}, {s.epochs}"
                      + (f", batch {s.batch_size}" if s.batch_size else "") for a, s in SIZES.items()))
    print(f"- records: {out}/, reference: {reference}/\n", flush=True)

    failed: list[str] = []
    nondet: list[str] = []
    for i, (m, s) in enumerate(runs, 1):
        path = record_file(out, m, s)
        cfg = run_config(m, s, out, device=device, threads=threads, data_root=data_root)
        t0 = time.perf_counter()
        for attempt in (1, 2):
            _clear(path)
            try:
                rec = train(cfg)
                break
            except NonFiniteLoss as e:
                failed.append(f"{m} seed {s}: diverged ({e})")
                rec = None
                break
            except Exception as e:  # noqa: BLE001 - one failed run must not end the check
                if attempt == 1 and _nondeterministic(e):
                    nondet.append(f"{m} seed {s}: {str(e).splitlines()[0]}")
                    print(f"  {m} seed {s}: an op without a deterministic kernel; rerunning with "
                          "use_deterministic_algorithms(True, warn_only=True) from here on",
                          flush=True)
                    torch.use_deterministic_algorithms(True, warn_only=True)
                    continue
                failed.append(f"{m} seed {s}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                rec = None
                break
        wall = time.perf_counter() - t0
        if rec is None:
            print(f"[{i}/{len(runs)}] {m} seed {s}: FAILED ({failed[-1]})", flush=True)
            continue
        last = rec.epochs[-1]
        ref_acc = None
        try:
            ref_acc = RunRecord.load(record_file(reference, m, s)).final_acc
        except RecordError:
            pass
        ref = f" (CPU {ref_acc:.2f}%)" if ref_acc is not None else ""
        print(f"[{i}/{len(runs)}] {m} seed {s}: test acc {last.test_acc:.2f}%{ref} after "
              f"{len(rec.epochs)} epochs, {wall:.1f} s", flush=True)

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        full = set(planned_runs()) == set(runs)
        ref_root = reference if full else _subset(reference, runs, Path(tmp, "reference"))
        fresh_root = out if full else _subset(out, runs, Path(tmp, "fresh"))
        try:  # the tolerances: the seed distribution of the whole reference
            result = compare(ref_root, fresh_root, Tolerances.try_measure(reference))
        except (CompareError, RecordError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        report = report_markdown(result, details=False)
        code = result.exit_code
        detail = report_markdown(result, details=True)
    table = timing_table(reference, out, methods, seeds, label)
    total = time.perf_counter() - t_start
    print("\n" + report)
    print(f"## Seconds per epoch, {label} against the CPU reference\n\n{table}\n")
    if nondet:
        print("WARNING: ops without a deterministic kernel (the GPU runs from there on are not "
              "guaranteed repeatable):\n" + "\n".join(f"- {n}" for n in nondet) + "\n")
    if failed:
        print("FAILED runs:\n" + "\n".join(f"- {f}" for f in failed) + "\n")
        code = 1
    over = f" (over the {TIME_BUDGET_S // 60} min budget)" if total > TIME_BUDGET_S else ""
    print(f"finished in {int(total // 60)} min {total % 60:.0f} s{over}; exit status {code}")
    atomic_write_text(out / "report.md",
        "\n".join(environment_lines(device)) + "\n\n" + detail
        + f"\n## Seconds per epoch, {label} against the CPU reference\n\n{table}\n"
        + (("\nFailed runs:\n" + "\n".join(f"- {f}" for f in failed) + "\n") if failed else "")
        + (("\nNondeterministic ops:\n" + "\n".join(f"- {n}" for n in nondet) + "\n") if nondet else "")
        + f"\nwall time {total:.0f} s, exit status {code}\n")
    print(f"(full report: {out / 'report.md'})")
    return code


def reference_commands(reference: Path, data_root: Path, methods: Sequence[str] = CASES,
                       seeds: Sequence[int] = SEEDS) -> list[list[str]]:
    """The ``python -m pcdeq train`` commands that make the CPU reference."""
    return [[sys.executable, "-m", "pcdeq", *train_args(m, s, reference, device="cpu",
                                                         threads=REFERENCE_THREADS,
                                                         data_root=data_root)]
            for m, s in planned_runs(methods, seeds)]


def make_reference(reference: Path, data_root: Path, methods: Sequence[str],
                   seeds: Sequence[int]) -> int:
    """Regenerate the CPU reference records, one run at a time (records only, no weights)."""
    cmds = reference_commands(reference, data_root, methods, seeds)
    t0 = time.perf_counter()
    for i, (cmd, (m, s)) in enumerate(zip(cmds, planned_runs(methods, seeds)), 1):
        _clear(record_file(reference, m, s))
        t = time.perf_counter()
        r = subprocess.run(cmd)
        if r.returncode != 0:
            print(f"error: {' '.join(cmd)} exited with {r.returncode}", file=sys.stderr)
            return r.returncode
        print(f"[{i}/{len(cmds)}] {m} seed {s}: {time.perf_counter() - t:.1f} s", flush=True)
    print(f"reference written to {reference}/ in {time.perf_counter() - t0:.0f} s")
    return 0


def _rel(p: Path) -> Path:
    """``p`` relative to the working directory where it lies below it (for printing)."""
    try:
        return p.resolve().relative_to(Path.cwd())
    except ValueError:
        return p


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m pcdeq gpu-check",
        description="Train a few epochs of one method per family and architecture on the GPU "
                    f"({DATASET}, seeds {', '.join(map(str, SEEDS))}, deterministic settings), "
                    "compare the records with the committed CPU records of the same runs "
                    "within the cross-machine tolerance, and report seconds per epoch and the "
                    "speed-up. Exit 0: within tolerance; 1: a difference beyond it or a failed "
                    "run; 2: bad input, or no CUDA GPU.")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help=f"where the fresh records go (default {DEFAULT_OUT}/)")
    ap.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE,
                    help="the committed CPU records (default tests/data/gpu_check/cpu/ of the checkout)")
    ap.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT,
                    help="the folder holding mnist5k/ (default: the checkout's data/)")
    ap.add_argument("--only", action="append", metavar="METHOD",
                    help=f"only this case (repeatable); cases: {', '.join(CASES)}")
    ap.add_argument("--seeds", type=int, nargs="+", help=f"only these seeds (of {list(SEEDS)})")
    ap.add_argument("--warn-only", action="store_true",
                    help="use_deterministic_algorithms(True, warn_only=True) from the start "
                         "(default: strict; an op without a deterministic kernel switches to "
                         "warn-only and is reported)")
    ap.add_argument("--no-tf32", action="store_true",
                    help="turn TF32 off for convolutions and matmuls (default: torch's defaults, "
                         "as a training run has them)")
    ap.add_argument("--make-reference", action="store_true",
                    help="regenerate the CPU reference (on the CPU, one thread, one run at a "
                         "time; takes minutes) and exit")
    ap.add_argument("--print-commands", action="store_true",
                    help="print the commands that make the CPU reference and exit")
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # cpu: tests only
    ap.add_argument("--threads", type=int, help=argparse.SUPPRESS)  # with --device cpu
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pcdeq gpu-check [--out DIR] ...``; returns the exit status."""
    t_start = time.perf_counter()
    # Before cuBLAS can start (it reads the variable once): the README's first setting.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    ap = _parser()
    args = ap.parse_args(argv)
    methods = list(CASES)
    if args.only:
        by_lower = {c.lower(): c for c in CASES}
        bad = [m for m in args.only if m.lower() not in by_lower]
        if bad:
            print(f"error: not a case of the check: {', '.join(bad)}; cases: {', '.join(CASES)}",
                  file=sys.stderr)
            return 2
        methods = [c for c in CASES if c.lower() in {m.lower() for m in args.only}]
    seeds = list(SEEDS)
    if args.seeds:
        bad = [s for s in args.seeds if s not in SEEDS]
        if bad:
            print(f"error: the reference has seeds {list(SEEDS)}, not {bad}", file=sys.stderr)
            return 2
        seeds = sorted(set(args.seeds))
    if args.print_commands:
        for cmd in reference_commands(_rel(args.reference), _rel(args.data_root), methods, seeds):
            print(" ".join(["python", *cmd[1:]]))
        return 0
    if args.make_reference:
        return make_reference(args.reference, args.data_root, methods, seeds)

    import torch
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(NO_CUDA_MESSAGE.format(torch=torch.__version__, cuda=torch.version.cuda),
              file=sys.stderr)
        return 2
    if args.device != "cpu" and not args.device.startswith("cuda"):
        print(f"error: unknown device {args.device!r}", file=sys.stderr)
        return 2
    missing = [str(p) for m, s in planned_runs(methods, seeds)
               if not (p := record_file(args.reference, m, s)).exists()]
    if missing:
        print(f"error: the CPU reference lacks {len(missing)} records ({missing[0]}, ...); "
              "pass --reference DIR, or make it with --make-reference on a CPU", file=sys.stderr)
        return 2
    if not (args.data_root / "mnist5k").exists():
        print(f"error: {args.data_root}/mnist5k/ not found; pass --data-root", file=sys.stderr)
        return 2
    return run_check(out=args.out, reference=args.reference, data_root=args.data_root,
                     methods=methods, seeds=seeds, device=args.device, threads=args.threads,
                     warn_only=args.warn_only, tf32=not args.no_tf32, t_start=t_start)


if __name__ == "__main__":
    sys.exit(main())
