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


def bench_model(dataset: str, method: str, warmup: int, steps: int, device: str, data_root: str) -> dict:
    tr = Trainer(RunConfig(dataset=dataset, method=method, device=device, data_root=data_root, log=False))
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
            "fwd_iters": f, "bwd_iters": b, "op_s": t_op, "floor_s": floor, "ratio": t_step / floor}


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
              epoch: bool = True, only: str | None = None) -> list[dict]:
    """Print and return the benchmark figures.

    Args:
        steps: timed training steps per model (after its warm-up steps).
        threads: torch threads (default: torch's).
        device: auto, cpu or cuda[:N].
        data_root: where Fashion-MNIST is looked for (the epoch timing).
        epoch: also time one Fashion-MNIST epoch.
        only: time only the cases whose method name contains this text (e.g. "SC").
    """
    if threads:
        torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    cases = [c for c in CASES if only is None or only in c[1]]
    rows = [bench_model(d, m, w, steps, device, data_root) for d, m, w in cases]
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
