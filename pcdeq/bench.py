"""``python -m pcdeq bench``: where the time of a training step goes.

For an L and an SC model it prints seconds per training and evaluation step, the forward
and backward iterations, and the overhead ratio

    step time / ((fwd + bwd + 2) x time of one bare layer application g_x(z)),

i.e. how close a step is to the cost of its fixed-point iterations alone (the +2 are the two
applications that attach z* to the graph), and the time of one solver iteration (pcDEQ: one
g_x(z); monDEQ: one Peaceman-Rachford iteration, an FFT-based (I + alpha(I - W))^-1 for the
conv model), measured as the no-grad solve of the layer divided by its iterations. monDEQ-L
and monDEQ-SC run beside pcDEQ-L and pcDEQ-SC (each with its own protocol's batch size).
Then it times one training epoch of pcDEQ-1-L-ReLU6 over Fashion-MNIST's 60,000 training
images, data pipeline included.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from .data import DatasetMissing
from .train import RunConfig, Trainer

# Warm-up steps first let W grow from its tiny initialization, so iteration counts are
# those of a model in training rather than of a fresh one.
CASES = [("mnist5k", "pcDEQ-1-L-ReLU6", 100), ("mnist5k", "monDEQ-L", 50),
         ("mnist5k", "pcDEQ-1-SC-ReLU6", 10), ("mnist5k", "monDEQ-SC", 5)]


def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


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
        x, y = x_all[i * bs:(i + 1) * bs], y_all[i * bs:(i + 1) * bs]
        loss = F.cross_entropy(model(x), y)
        tr.opt.zero_grad(set_to_none=True)
        loss.backward()
        tr.opt.step()
        model.project_()

    model.train()
    for i in range(warmup):
        step(i)
    times, fwd, bwd = [], [], []
    for i in range(warmup, warmup + steps):
        sync()
        t = time.perf_counter()
        step(i)
        sync()
        times.append(time.perf_counter() - t)
        fwd.append(sum(l.last_fwd_iters for l in layers))
        bwd.append(sum(l.last_bwd_iters for l in layers))

    # One bare application g_x(z) of each DEQ layer, on the inputs the step actually sees.
    x = x_all[:bs]
    inputs = {}
    hooks = [l.register_forward_pre_hook(lambda m, a: inputs.__setitem__(m, a[0])) for l in layers]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()

    def bare() -> None:
        with torch.no_grad():
            for l in layers:
                xin, W = l.inputs(inputs[l]), l.effective_weight()
                l.sigma(l.op(W, xin) + xin)
        sync()

    t_layer = _median_time(bare, 30)

    # One solver iteration: the layer's no-grad solve (setup included) over its iterations.
    def solve() -> None:
        with torch.no_grad():
            for l in layers:
                l(inputs[l])
        sync()

    t_solve = _median_time(solve, 5)
    solve_iters = sum(l.last_fwd_iters for l in layers)

    model.eval()

    def eval_step() -> None:
        with torch.no_grad():
            model(x)
        sync()

    t_eval = _median_time(eval_step, 5)
    t_step = statistics.median(times)
    f, b = statistics.mean(fwd), statistics.mean(bwd)
    return {"model": f"{method} ({dataset})", "batch": bs, "train_step_s": t_step, "eval_step_s": t_eval,
            "fwd_iters": f, "bwd_iters": b, "layer_s": t_layer, "iter_s": t_solve / solve_iters,
            "ratio": t_step / ((f + b + 2) * t_layer)}


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
              epoch: bool = True) -> list[dict]:
    """Print and return the benchmark figures."""
    if threads:
        torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}")
    rows = [bench_model(d, m, w, steps, device, data_root) for d, m, w in CASES]
    print(f"{'model':34s} {'batch':>5s} {'train step':>11s} {'eval step':>10s} {'fwd':>6s} {'bwd':>6s} "
          f"{'g_x(z)':>9s} {'solver it.':>10s} {'ratio':>6s}")
    for r in rows:
        print(f"{r['model']:34s} {r['batch']:5d} {r['train_step_s'] * 1e3:9.2f}ms {r['eval_step_s'] * 1e3:8.2f}ms "
              f"{r['fwd_iters']:6.1f} {r['bwd_iters']:6.1f} {r['layer_s'] * 1e3:7.3f}ms "
              f"{r['iter_s'] * 1e3:8.3f}ms {r['ratio']:6.2f}")
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
