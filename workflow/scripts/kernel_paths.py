"""Retrain committed runs on another kernel path, for claim C9 (pcdeq/numerics.py).

Each committed record results/<profile>/<dataset>/<method>/seed<S>.json is retrained with the
same command except the kernel path, into
results/<profile>/kernel_paths/<path>/<dataset>/<method>/seed<S>.json. The path is either

* another torch thread count on any machine: <path> = threads<T>; or
* ``--cpu``: the record's own thread count on this machine's CPU, when it is not the CPU the
  record ran on (the cross-machine case): <path> = cpu-<capability>-<vendor>, e.g.
  cpu-avx2-amd; or
* ``--isa CAP``: the record's own thread count on this machine with its vector kernels
  limited to CAP (torch's ``ATEN_CPU_CAPABILITY``, oneDNN's ``ONEDNN_MAX_CPU_ISA``, MKL's
  ``MKL_ENABLE_INSTRUCTIONS``): another kernel path on the same CPU (measured: convolutions and
  log-softmax change bits) for when no other machine is at hand: <path> = isa-<cap>-<vendor>,
  e.g. isa-avx2-amd.

A record already there is kept (the script resumes an interrupted batch); each run resumes
from its checkpoint (RECORD.part.ckpt).

    python workflow/scripts/kernel_paths.py quick 1 --methods pcDEQ-1-L-ReLU6 DEQ-L-Tanh --seeds 0 1
    python workflow/scripts/kernel_paths.py quick --cpu
    python workflow/scripts/kernel_paths.py quick --isa avx2 --methods pcDEQ-1-L-Tanh
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from pcdeq.record import RunRecord
from pcdeq.train import environment


def cpu_path_name(env: dict, kind: str = "cpu") -> str:
    """The folder of this CPU's kernel path: its vector capability and vendor (``kind`` "isa":
    the capability is a limit set on this CPU, not its own)."""
    vendor = next((v for v in ("intel", "amd", "arm") if v in env["cpu"].lower()), "cpu")
    return re.sub(r"[^a-z0-9-]", "", f"{kind}-{env['cpu_capability']}-{vendor}".lower())


# --isa's choices: the variables that limit torch's own kernels, oneDNN's (convolutions) and
# MKL's (matrix products), each of which dispatches on the CPU by itself
ISA_LIMITS = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile")
    ap.add_argument("threads", type=int, nargs="?", help="torch threads of the other kernel path")
    ap.add_argument("--cpu", action="store_true",
                    help="the records' own thread count on this machine's CPU (another CPU)")
    ap.add_argument("--isa", choices=sorted(ISA_LIMITS),
                    help="the records' own thread count on this machine, vector kernels limited "
                         "to ISA (another kernel path on the same CPU)")
    ap.add_argument("--methods", nargs="+", help="default: every committed method")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--data-root", default="data")
    a = ap.parse_args()
    if sum((a.threads is not None, a.cpu, a.isa is not None)) != 1:
        ap.error("give either a thread count (threads<T> path), --cpu (this machine's CPU) or "
                 "--isa CAP (this machine's CPU, kernels limited to CAP)")
    here = environment(torch.device("cpu"))
    child_env = None
    if a.isa:
        here = {**here, "cpu_capability": a.isa.upper()}
        path = cpu_path_name(here, kind="isa")
        child_env = {**os.environ, **ISA_LIMITS[a.isa]}
    else:
        path = cpu_path_name(here) if a.cpu else f"threads{a.threads}"
    root = Path("results") / a.profile
    out_root = root / "kernel_paths" / path
    recs = sorted(root.glob("*/*/seed*.json"))
    if not recs:
        sys.exit(f"no records under {root}/: commit the profile's reference records first")
    for rec in recs:
        r = RunRecord.load(rec)
        if (a.methods and r.method not in a.methods) or r.seed not in a.seeds:
            continue
        if r.data["synthetic"]:  # a stand-in is no evidence for C9 either
            continue
        threads = a.threads if a.threads is not None else r.threads
        if a.threads is None:
            env = r.environment or {}
            if (env.get("cpu"), env.get("cpu_capability")) == (here["cpu"], here["cpu_capability"]):
                sys.exit(f"{rec} ran on this CPU ({here['cpu']}, {here['cpu_capability']}): "
                         f"{'--isa ' + a.isa if a.isa else '--cpu'} would be the same kernel "
                         "path; use a thread count here, or another --isa / machine")
        elif r.threads == a.threads:
            sys.exit(f"{rec} already ran with {a.threads} threads: choose another count")
        out = out_root / rec.relative_to(root)
        if out.exists():
            print(f"done already: {out}")
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pcdeq", "train", "--dataset", r.dataset, "--method",
               r.method, "--seed", str(r.seed), "--epochs", str(r.hparams["epochs"]),
               "--out", f"{out}.part", "--device", "cpu", "--data-root", a.data_root,
               "--threads", str(threads), "--quiet"]
        for k, flag in (("train_limit", "--train-limit"), ("test_limit", "--test-limit")):
            if (r.limits or {}).get(k) is not None:
                cmd += [flag, str(r.limits[k])]
        print(" ".join(cmd), flush=True)
        rc = subprocess.call(cmd, env=child_env)
        if rc != 0:
            print(f"FAILED ({rc}): {rec}", flush=True)
            continue
        Path(f"{out}.part").rename(out)  # the record while training, finished
        Path(f"{out}.part.ckpt").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
