"""Why a multiscale run's test accuracy can sit at chance while its training accuracy rises.

Loads a training checkpoint (``<record>.json.part.ckpt``, written after every epoch) and
compares, for every BatchNorm of the model, its running variance (what eval mode divides by)
with the variance of its input on one test batch, and how far that batch's channel means are
from the running means (in running standard deviations), then evaluates the model twice: with the
running statistics (eval mode, what the record's test accuracy is) and with batch statistics
(the BNs alone in train mode; nothing is updated that is saved).

The BN running variance starts at 1 and forgets that start as momentum^steps = 0.9^n; MDEQ's
init (every conv N(0, 0.01), the reference's ``init_weights``) makes the true variances
~1e-4..1e-3, so for the first ~100 optimizer steps eval mode divides by a variance that is
mostly the initial 1. On CIFAR-10 (390 steps an epoch) that is over before the first
evaluation; on 6,000 images (47 steps an epoch) it is not.

Usage (nothing is written):
    python workflow/scripts/bn_probe.py runs/fashion/fashion_mnist/MDEQ-MS/seed1.json.part.ckpt
"""
from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn as nn

from pcdeq.train import RunConfig, Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt", help="a run's checkpoint, <record>.json.part.ckpt")
    ap.add_argument("--test-images", type=int, default=2048, help="first N test images (2048)")
    ap.add_argument("--data-root", default="data")
    args = ap.parse_args()
    torch.set_num_threads(1)

    state = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    ident = state["identity"]
    t = Trainer(RunConfig(dataset=ident["dataset"], method=ident["method"], seed=ident["seed"],
                          train_limit=ident["limits"]["train_limit"], test_limit=args.test_images,
                          out="/dev/null/unused.json", data_root=args.data_root, log=False))
    t.model.load_state_dict(state["model"])
    epochs = len(state["record"]["epochs"])
    steps = epochs * t.n_batches
    for layer in t.model.deq_layers():
        layer.at_step_(epochs, steps)  # as the trainer's evaluation after that epoch
    model = t.model.eval()
    bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    print(f"{ident['method']} seed {ident['seed']}, after {epochs} epoch(s) = {steps} optimizer "
          f"steps; momentum^steps = {0.9 ** steps:.3g} (the initial running variance's weight)")

    seen: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, i[0].detach()))
             for n, m in bns.items()]
    with torch.no_grad():
        model(t.pre(t.test_split.images[:t.hp.batch_size]))
    for h in hooks:
        h.remove()
    print(f"{'BatchNorm':34s} {'running var (median)':>20s} {'batch var (median)':>19s} "
          f"{'batch / running':>16s} {'max |mean shift| / running std':>31s}")
    for n, m in bns.items():
        bv = seen[n].var((0, 2, 3), unbiased=False)
        rv = m.running_var
        shift = ((seen[n].mean((0, 2, 3)) - m.running_mean).abs() / (rv + m.eps).sqrt()).max()
        print(f"{n:34s} {rv.median().item():20.3g} {bv.median().item():19.3g} "
              f"{statistics.median((bv / rv).tolist()):16.3g} {shift.item():31.3g}")

    def accuracy(batch_stats: bool) -> float:
        model.eval()
        saved = {n: (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
                 for n, m in bns.items()}
        if batch_stats:
            for m in bns.values():
                m.train()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(t.test_split), t.hp.batch_size):
                xb = t.test_split.images[i:i + t.hp.batch_size]
                yb = t.test_split.labels[i:i + t.hp.batch_size]
                correct += (model(t.pre(xb)).argmax(1) == yb).sum().item()
        for n, m in bns.items():  # train-mode BN updated its running statistics: put them back
            m.running_mean.copy_(saved[n][0]); m.running_var.copy_(saved[n][1])
            m.num_batches_tracked.copy_(saved[n][2])
        return 100.0 * correct / len(t.test_split)

    print(f"test accuracy on the first {len(t.test_split)} test images: running statistics "
          f"(eval mode) {accuracy(False):.2f}%, batch statistics {accuracy(True):.2f}%")


if __name__ == "__main__":
    main()
