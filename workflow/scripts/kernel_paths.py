"""Retrain committed runs on another kernel path, for claim C9 (pcdeq/numerics.py).

Each committed record results/<profile>/<dataset>/<method>/seed<S>.json is retrained with the
same command except the torch thread count, into
results/<profile>/kernel_paths/threads<T>/<dataset>/<method>/seed<S>.json. A record already
there is kept (the script resumes an interrupted batch); each run resumes from its checkpoint
(RECORD.part.ckpt).

    python workflow/scripts/kernel_paths.py quick 1 --methods pcDEQ-1-L-ReLU6 DEQ-L-Tanh --seeds 0 1
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from pcdeq.record import RunRecord


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile")
    ap.add_argument("threads", type=int, help="torch threads of the other kernel path")
    ap.add_argument("--methods", nargs="+", help="default: every committed method")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--data-root", default="data")
    a = ap.parse_args()
    root = Path("results") / a.profile
    out_root = root / "kernel_paths" / f"threads{a.threads}"
    recs = sorted(root.glob("*/*/seed*.json"))
    if not recs:
        sys.exit(f"no records under {root}/: commit the profile's reference records first")
    for rec in recs:
        r = RunRecord.load(rec)
        if (a.methods and r.method not in a.methods) or r.seed not in a.seeds:
            continue
        if r.data["synthetic"]:  # a stand-in is no evidence for C9 either
            continue
        if r.threads == a.threads:
            sys.exit(f"{rec} already ran with {a.threads} threads: choose another count")
        out = out_root / rec.relative_to(root)
        if out.exists():
            print(f"done already: {out}")
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pcdeq", "train", "--dataset", r.dataset, "--method",
               r.method, "--seed", str(r.seed), "--epochs", str(r.hparams["epochs"]),
               "--out", f"{out}.part", "--device", "cpu", "--data-root", a.data_root,
               "--threads", str(a.threads), "--quiet"]
        for k, flag in (("train_limit", "--train-limit"), ("test_limit", "--test-limit")):
            if (r.limits or {}).get(k) is not None:
                cmd += [flag, str(r.limits[k])]
        print(" ".join(cmd), flush=True)
        rc = subprocess.call(cmd)
        if rc != 0:
            print(f"FAILED ({rc}): {rec}", flush=True)
            continue
        Path(f"{out}.part").rename(out)  # the record while training, finished
        Path(f"{out}.part.ckpt").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
