"""``python -m pcdeq bench``: where the time of a training step goes.

For L and SC models it times the trainer's own training step (:meth:`Trainer.train_step`, the
one training runs: auxiliary losses and constraints included) and an evaluation step, counts
the forward and backward fixed-point iterations, and sets the step against its **floor**
measured in the same run: (fwd + bwd + 3) applications of the layer's operator W z (for SC a
3x3 convolution) on the tensors the step sees, the 3 being the step that attaches z* to the
graph, the Jacobian at z* and the weight gradient. The ratio step / floor is what the solver
loop and the rest of the model (pre-layer, BN, pooling, head, optimizer) cost on top of the
convolutions a DEQ step cannot avoid. The SC model is timed with each of the paper's four
activations; monDEQ-L and monDEQ-SC run beside pcDEQ (each with its own protocol's batch
size; their W z is the monotone operator's multiply, of which a Peaceman-Rachford iteration
needs none but the inverse). Then it times one
training epoch of pcDEQ-1-L-ReLU6 over Fashion-MNIST's 60,000 training images, data pipeline
included.
"""

from __future__ import annotations

import statistics
import time

import torch

from .data import DatasetMissing
from .models import capturing_inputs
from .train import RunConfig, Trainer

# Warm-up steps first let W grow from its tiny initialization, so iteration counts are
# those of a model in training rather than of a fresh one.
CASES = [("mnist5k", "pcDEQ-1-L-ReLU6", 100), ("mnist5k", "monDEQ-L", 50),
         ("mnist5k", "pcDEQ-1-SC-ReLU6", 10), ("mnist5k", "pcDEQ-1-SC-Tanh", 10),
         ("mnist5k", "pcDEQ-1-SC-Softsign", 10), ("mnist5k", "pcDEQ-2-SC-Sigmoid", 10),
         ("mnist5k", "monDEQ-SC", 5)]


def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _operator_loop(layers, inputs: dict, sync, reps: int = 3):
    """A closure timing one application of each layer's operator (W z; monDEQ: its operator
    multiply) at a fixed point of the step's own batch: reps applications, per application."""
    with torch.no_grad():
        args = [(l, l.effective_weight(), l(inputs[l])) for l in layers]

    def run() -> float:
        with torch.no_grad():
            sync()
            t = time.perf_counter()
            for _ in range(reps):
                for l, W, z in args:
                    l.op(W, z)
            sync()
            return (time.perf_counter() - t) / reps
    return run


def bench_model(dataset: str, method: str, warmup: int, steps: int, device: str, data_root: str,
                solver: str | None = None) -> dict:
    tr = Trainer(RunConfig(dataset=dataset, method=method, device=device, data_root=data_root,
                           log=False, solver=solver))
    model, layers = tr.model, tr.model.deq_layers()
    bs = tr.hp.batch_size
    n_batches = len(tr.train_split) // bs
    x_all = tr.pre(tr.train_split.images[: bs * n_batches])
    y_all = tr.train_split.labels[: bs * n_batches]
    sync = torch.cuda.synchronize if tr.device.type == "cuda" else (lambda: None)

    def step(i: int) -> None:
        i %= n_batches
        tr.train_step(x_all[i * bs:(i + 1) * bs], y_all[i * bs:(i + 1) * bs])

    model.train()
    for i in range(warmup):
        step(i)
    # The layer inputs u of the first batch, as the step sees them after the warm-up.
    x = x_all[:bs]
    with torch.no_grad(), capturing_inputs(model) as inputs:
        model(x)
    op_time = _operator_loop(layers, inputs, sync)

    # Step and floor interleaved, so that a busy host slows both alike.
    times, op_times, fwd, bwd = [], [], [], []
    for i in range(warmup, warmup + steps):
        sync()
        t = time.perf_counter()
        step(i)
        sync()
        times.append(time.perf_counter() - t)
        fwd.append(sum(l.last_fwd_iters for l in layers))
        bwd.append(sum(l.last_bwd_iters for l in layers))
        op_times.append(op_time())
    t_op = statistics.median(op_times)
    model.eval()

    def eval_step() -> None:
        with torch.no_grad():
            model(x)
        sync()

    t_eval = _median_time(eval_step, 5)
    t_step = statistics.median(times)
    f, b = statistics.mean(fwd), statistics.mean(bwd)
    floor = (f + b + 3) * t_op
    return {"model": f"{method} ({dataset})", "batch": bs, "train_step_s": t_step, "eval_step_s": t_eval,
            "fwd_iters": f, "bwd_iters": b, "op_s": t_op, "floor_s": floor, "ratio": t_step / floor,
            "solver": tr.solver, "trainer": tr, "x": x}


# The paper's suggestion ("we could improve the convergence rate with vector extrapolation"),
# measured: pcDEQ L / SC / MC with tanh (no l2 contraction needed) under each solver.
SOLVER_CASES = [("mnist5k", "pcDEQ-1-L-Tanh", 100), ("mnist5k", "pcDEQ-1-SC-Tanh", 10),
                ("mnist5k", "pcDEQ-1-MC-Tanh", 10)]
SOLVER_NAMES = ("fixed_point", "anderson", "broyden")


# Where "the same fixed point" is judged: tol 1e-9; plain iteration may need thousands of
# steps, Broyden keeps two (batch, D) vectors per step (its cap bounds its memory).
TIGHT_TOL = 1e-9
TIGHT_MAX_ITER = {"fixed_point": 3000, "anderson": 3000, "broyden": 100}


def fixed_point_agreement(tr: Trainer, x: torch.Tensor, solvers: tuple[str, ...]) -> dict:
    """Solve every DEQ layer of ``tr``'s model on the batch ``x`` (eval mode) with each
    solver, at the layer's own tol and at :data:`TIGHT_TOL`; per solver the largest relative
    distance max|z - z_plain| / max|z_plain| over the layers at each, and the smallest entry
    of z (the orthant: >= 0). At the layer's tol the solvers stop at different points within
    it; at the tight tol the distance says whether they find the same fixed point."""
    model, layers = tr.model, tr.model.deq_layers()
    model.eval()
    with torch.no_grad(), capturing_inputs(model) as inputs:
        model(x)

    def solve(l, name: str, tight: bool) -> torch.Tensor:
        saved = l.solver, l.tol, l.max_iter
        l.solver = name
        if tight:
            l.tol, l.max_iter = TIGHT_TOL, TIGHT_MAX_ITER.get(name, 3000)
        try:
            return l(inputs[l])
        finally:
            l.solver, l.tol, l.max_iter = saved

    out: dict[str, dict] = {name: {"distance": 0.0, "distance_tight": 0.0, "min_z": float("inf")}
                            for name in solvers}
    with torch.no_grad():
        for l in layers:
            for key, tight in (("distance", False), ("distance_tight", True)):
                ref = solve(l, solvers[0], tight)
                scale = ref.abs().max().clamp(min=1e-30)
                for name in solvers:
                    z = ref if name == solvers[0] else solve(l, name, tight)
                    o = out[name]
                    o[key] = max(o[key], float((z - ref).abs().max() / scale))
                    o["min_z"] = min(o["min_z"], float(z.min()))
    model.train()
    return out


def bench_solvers(steps: int, device: str, data_root: str, only: str | None = None) -> list[dict]:
    """Each :data:`SOLVER_CASES` model trained with each solver (same seed, same warm-up
    steps, the trainer's own step), and the agreement of their fixed points on the plain
    iteration's model; printed side by side."""
    rows = []
    for d, m, w in SOLVER_CASES:
        if only is not None and only not in m:
            continue
        runs = [bench_model(d, m, w, steps, device, data_root, solver=s) for s in SOLVER_NAMES]
        agree = fixed_point_agreement(runs[0]["trainer"], runs[0]["x"], SOLVER_NAMES)
        for r in runs:
            r.update(agree[r["solver"]])
            del r["trainer"], r["x"]
            rows.append(r)
    print(f"{'model':32s} {'solver':12s} {'train step':>11s} {'eval step':>10s} {'fwd':>5s} {'bwd':>5s} "
          f"{'dist @ tol':>10s} {'dist @ 1e-9':>11s} {'min z':>9s}")
    for r in rows:
        print(f"{r['model']:32s} {r['solver']:12s} {r['train_step_s'] * 1e3:9.2f}ms "
              f"{r['eval_step_s'] * 1e3:8.2f}ms {r['fwd_iters']:5.1f} {r['bwd_iters']:5.1f} "
              f"{r['distance']:10.1e} {r['distance_tight']:11.1e} {r['min_z']:9.2e}")
    print("same tol (the paper's 1e-4) for every solver in training; iterations summed over the "
          "model's DEQ layers; dist: max|z - z_plain| / max|z_plain| on the plain iteration's "
          "warmed-up model, every solver from z = 0, at the paper's tol and at 1e-9; Anderson / "
          "Broyden iterates kept in z >= 0, pcDEQ's orthant (a step that would leave it is the plain step)")
    return rows


def bench_epoch(device: str, data_root: str) -> dict | None:
    try:
        tr = Trainer(RunConfig(dataset="fashion_mnist", method="pcDEQ-1-L-ReLU6", device=device,
                               data_root=data_root, log=False, progress=False))
    except DatasetMissing:
        return None
    t = time.perf_counter()
    rec = tr.train_epoch(1)
    return {"images": len(tr.train_split), "seconds": time.perf_counter() - t,
            "fwd_iters": rec["fwd_iters"], "bwd_iters": rec["bwd_iters"]}


def run_bench(steps: int = 8, threads: int | None = None, device: str = "auto", data_root: str = "data",
              epoch: bool = True, only: str | None = None, solvers: bool = False) -> list[dict]:
    """Print and return the benchmark figures.

    Args:
        steps: timed training steps per model (after its warm-up steps).
        threads: torch threads (default: torch's).
        device: auto, cpu or cuda[:N].
        data_root: where Fashion-MNIST is looked for (the epoch timing).
        epoch: also time one Fashion-MNIST epoch.
        only: time only the cases whose method name contains this text (e.g. "SC").
        solvers: instead, compare the solvers on pcDEQ L / SC / MC (:func:`bench_solvers`).
    """
    if threads:
        torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    if solvers:
        return bench_solvers(steps, device, data_root, only)
    cases = [c for c in CASES if only is None or only in c[1]]
    rows = [bench_model(d, m, w, steps, device, data_root) for d, m, w in cases]
    for r in rows:
        del r["trainer"], r["x"]
    print(f"{'model':32s} {'batch':>5s} {'train step':>11s} {'eval step':>10s} {'fwd':>5s} {'bwd':>5s} "
          f"{'one W z':>9s} {'floor':>9s} {'step/floor':>10s}")
    for r in rows:
        print(f"{r['model']:32s} {r['batch']:5d} {r['train_step_s'] * 1e3:9.2f}ms {r['eval_step_s'] * 1e3:8.2f}ms "
              f"{r['fwd_iters']:5.1f} {r['bwd_iters']:5.1f} {r['op_s'] * 1e3:7.3f}ms "
              f"{r['floor_s'] * 1e3:7.1f}ms {r['ratio']:10.2f}")
    print("floor: (fwd + bwd + 3) x one W z, measured in this run on the step's own tensors "
          "(monDEQ: W z is its operator multiply)")
    if epoch:
        e = bench_epoch(device, data_root)
        if e is None:
            print("epoch timing skipped: Fashion-MNIST not found (torchvision downloads it into data/ "
                  "when online; on Debian: apt install dataset-fashion-mnist)")
        else:
            print(f"one epoch pcDEQ-1-L-ReLU6 on Fashion-MNIST ({e['images']:,} images): "
                  f"{e['seconds']:.2f}s training (data pipeline included), "
                  f"fwd {e['fwd_iters']:.1f} / bwd {e['bwd_iters']:.1f} iterations")
            rows.append(e)
    return rows
