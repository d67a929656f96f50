"""Training with per-epoch run records, atomic checkpoints and exact resume.

A run is fully described by :class:`RunConfig`. After every epoch the checkpoint (model,
optimizer, scheduler, RNG states and the record so far) and the JSON record are written
atomically; rerunning the same command resumes from the last finished epoch, and on the
CPU the finished record equals an uninterrupted run's.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import re
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import Dataset, Preprocess, batches, load_dataset
from .errors import ConfigError
from .files import atomic_torch_save, atomic_write_json
from .families import METHOD_FAMILIES, family_of, hyperparameters, parse_method
from .hparams import HParams, dataset_info
from .models import DEQClassifier, build_model, capturing_inputs, n_params
from .solver import SOLVERS
from .record import RECORD_FORMAT, EpochRecord, RecordError, RunRecord


@dataclass(frozen=True)
class RunConfig:
    """One training run. ``None`` fields take the paper's value (see :mod:`pcdeq.hparams`)."""

    dataset: str
    method: str
    seed: int = 0
    out: str = "run.json"
    epochs: int | None = None
    lr: float | None = None
    tol: float | None = None
    max_iter: int | None = None
    batch_size: int | None = None
    jr_weight: float | None = None  # DEQ-JR only
    jr_prob: float | None = None  # DEQ-JR only
    lip_bound: float | None = None  # LipDEQ only
    solver: str | None = None  # a name in pcdeq.SOLVERS (None: the family's, else fixed_point)
    train_limit: int | None = None
    test_limit: int | None = None
    data_root: str = "data"
    device: str = "auto"
    threads: int | None = None
    progress: bool | None = None  # None: a progress bar only on a terminal
    log: bool = True  # one line per epoch on stderr
    weights: str | None = None  # where to write the final weights (see load_trained)


WEIGHTS_FORMAT = "pcdeq-weights/1"
# The RunConfig fields a model is rebuilt from (the rest say where and how a run ran).
_MODEL_FIELDS = ("dataset", "method", "seed", "epochs", "lr", "tol", "max_iter", "batch_size",
                 "jr_weight", "jr_prob", "lip_bound", "solver", "train_limit", "test_limit")


def keep_freed_memory() -> None:
    """Let glibc keep freed memory for reuse instead of returning it to the OS.

    A conv layer's iterate (64 x 82 x 28 x 28 floats, 16 MB) is above glibc's default mmap
    threshold: every fresh buffer of that size is mapped anew and page-faulted in, which
    measured 5-10 ms per buffer against a 25-35 ms convolution. Serving such buffers from the
    heap (mmap threshold 32 MB, glibc's maximum; trim threshold 1 GB) removes that cost
    (``python -m pcdeq bench``). Allocation never changes results. A no-op where the C
    library is not glibc.
    """
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    mallopt(M_MMAP_THRESHOLD, 32 << 20)
    mallopt(M_TRIM_THRESHOLD, 1 << 30)
    mallopt(M_TOP_PAD, 64 << 20)


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN or infinite loss."""


def resolve_hparams(cfg: RunConfig) -> HParams:
    """The method's hyperparameters with the run's overrides applied (and checked).

    Raises:
        ConfigError: a non-positive value, a family-specific flag given to another family
            (e.g. --lip-bound for a pcDEQ method), or a LipDEQ bound outside (0, 1).
    """
    hp = hyperparameters(cfg.dataset, cfg.method)
    over = {k: getattr(cfg, k) for k in ("epochs", "lr", "tol", "max_iter", "batch_size")
            if getattr(cfg, k) is not None}
    for k, v in over.items():
        if not (v > 0 and math.isfinite(v)):  # nan and inf would train, then diverge
            raise ConfigError(f"--{k.replace('_', '-')} must be a positive finite number, got {v}")
    family = family_of(cfg.method)
    for k in dict.fromkeys(k for f in METHOD_FAMILIES.values() for k in f.flags):
        v = getattr(cfg, k)
        if v is None:
            continue
        if k not in family.flags:
            owner = next(f.name for f in METHOD_FAMILIES.values() if k in f.flags)
            raise ConfigError(f"--{k.replace('_', '-')} applies to {owner} methods only, not to "
                              f"{cfg.method}")
        over[k] = v
    if family.check_flags is not None:
        family.check_flags({k: over[k] for k in family.flags if k in over})
    return dataclasses.replace(hp, **over)


def resolve_solver(cfg: RunConfig) -> str:
    """The run's fixed-point solver: ``--solver``, else the family's own, else the paper's
    plain iteration.

    Raises:
        ConfigError: a name not in :data:`pcdeq.SOLVERS`, or any solver for a family that
            always uses its own (monDEQ's Peaceman-Rachford, MDEQ's Broyden, the Lipschitz
            MDEQ's Anderson), naming the valid choices.
    """
    family = family_of(cfg.method)
    if cfg.solver is None:
        return family.solver or "fixed_point"
    if cfg.solver not in SOLVERS:
        raise ConfigError(f"--solver {cfg.solver!r} is not a registered solver; choose one of "
                          f"{', '.join(SOLVERS)}")
    if family.solver is not None and cfg.solver != family.solver:
        raise ConfigError(f"--solver {cfg.solver}: {family.name} methods always use their own "
                          f"solver ({family.solver}); --solver applies to the families with a plain "
                          f"fixed-point layer: "
                          + ", ".join(f.name for f in METHOD_FAMILIES.values() if f.solver is None))
    return cfg.solver


def make_scheduler(opt: torch.optim.Optimizer, hp: HParams,
                   n_batches: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule: the paper's MultiStepLR (stepped per epoch), or MDEQ's
    cosine annealing over all iterations down to 1e-6 (stepped per iteration)."""
    if hp.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=hp.epochs * n_batches,
                                                          eta_min=1e-6)
    if hp.schedule is not None:
        raise ConfigError(f"unknown schedule {hp.schedule!r}; use None (MultiStepLR) or 'cosine'")
    return torch.optim.lr_scheduler.MultiStepLR(opt, hp.milestones(), hp.lr_decay_factor)


def resolve_device(name: str) -> torch.device:
    """The torch device of ``--device``: auto (CUDA if visible, else the CPU), cpu, cuda or
    cuda:N with N a GPU torch sees.

    Raises:
        ConfigError: another name, or a CUDA device torch does not see.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not re.fullmatch(r"cuda(:\d+)?", name):
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N (N = 0, 1, ...)")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but torch sees no CUDA GPU; use --device cpu or auto")
        n = torch.cuda.device_count()
        if ":" in name and int(name[5:]) >= n:
            raise ConfigError(f"device {name!r}: torch sees {n} CUDA GPU(s), cuda:0 to cuda:{n - 1}")
    return torch.device(name)


def check_writable(flag: str, path: Path) -> None:
    """Refuse an output path that cannot be written, before any work.

    Raises:
        ConfigError: ``path`` is a folder, a folder on its way is a file, or the nearest
            existing folder on its way is not writable.
    """
    if path.is_dir():
        example = path / ("seed0.json" if flag == "--out" else "seed0.pt")
        raise ConfigError(f"{flag} {path} is a folder; name a file in it, e.g. {example}")
    d = path.parent
    while not d.exists():  # the folders a write would create
        d = d.parent
    if not d.is_dir():
        raise ConfigError(f"{flag} {path}: {d} is a file, not a folder; choose another path")
    if not os.access(d, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: no permission to write in {d}/; choose another path")


def checkpoint_path(out: Path) -> Path:
    return out.with_name(out.name + ".ckpt")


def sigma_max(model: DEQClassifier) -> float | None:
    """Largest singular value of the effective W: dense for L models; for conv models the
    operator norm where the weight computes it (LipDEQ), else null."""
    layer = model.deq_layers()[0]
    with torch.no_grad():
        if model.spec.method.arch == "L":
            W = layer.effective_weight()
            return float(torch.linalg.matrix_norm(W.double(), ord=2))
        if len(model.deq_layers()) == 1:
            return layer.weight_operator_norm()
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _onednn_version() -> str | None:
    import re
    m = re.search(r"(?:MKL-DNN|oneDNN) v([\w.]+)", torch.__config__.show())
    return m.group(1) if m else None


def environment(device: torch.device) -> dict:
    """Where a run ran: what decides its last digits (kernels chosen by CPU capability,
    threads, library versions), so that a difference between two records can be traced."""
    cuda = device.type == "cuda"
    return {
        "cpu": _cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "onednn": _onednn_version(),
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "python": platform.python_version(), "platform": platform.platform(),
    }


class _IterStats:
    """Accumulates per-batch iteration counts: per layer, then unweighted mean over batches."""

    def __init__(self, n_layers: int) -> None:
        self.fwd: list[list[int]] = [[] for _ in range(n_layers)]
        self.bwd: list[list[int]] = [[] for _ in range(n_layers)]
        self.max_iter_hits = 0

    def add(self, layers, backward: bool) -> None:
        for i, layer in enumerate(layers):
            st = layer.last_fwd_stats
            self.fwd[i].append(st.iters)
            self.max_iter_hits += st.hit_max_iter
            if backward:
                bst = layer.last_bwd_stats
                self.bwd[i].append(bst.iters)
                self.max_iter_hits += bst.hit_max_iter

    @staticmethod
    def summary(per_layer: list[list[int]]) -> tuple[float | None, list[float] | None]:
        if not per_layer[0]:
            return None, None
        means = [sum(v) / len(v) for v in per_layer]
        # Mean over layers per batch, then over batches == mean of the per-layer means.
        return sum(means) / len(means), (means if len(means) > 1 else None)


def _no_grad_forward(model: DEQClassifier, x: torch.Tensor) -> None:
    with torch.no_grad():
        model(x)


def _epoch_line(rec: RunRecord, e: EpochRecord) -> str:
    return (f"[{rec.dataset} {rec.method} seed {rec.seed}] epoch {e.epoch}/{rec.hparams['epochs']}: "
            f"train loss {e.train_loss:.4f} acc {e.train_acc:.2f}% | test loss {e.test_loss:.4f} "
            f"acc {e.test_acc:.2f}% | iters fwd {e.fwd_iters:.1f} bwd {e.bwd_iters:.1f} "
            f"test {e.test_fwd_iters:.1f} | {e.seconds:.1f}s")


class Trainer:
    """Owns one run: model, optimizer, data and record. Use :func:`train` for the common case."""

    def __init__(self, cfg: RunConfig) -> None:
        # Everything that can be wrong with the input is checked here, before any work.
        parse_method(cfg.method)
        info = dataset_info(cfg.dataset)
        self.cfg = cfg
        self.hp = resolve_hparams(cfg)
        self.solver = resolve_solver(cfg)
        self.device = resolve_device(cfg.device)
        if self.device.type == "cpu":
            keep_freed_memory()
        self.out = Path(cfg.out)
        self.ckpt = checkpoint_path(self.out)
        check_writable("--out", self.out)  # else the first epoch's record would fail, after it
        if cfg.weights:
            check_writable("--weights", Path(cfg.weights))  # else the last epoch's would
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        self.data: Dataset = load_dataset(info.name, cfg.data_root, train_limit=cfg.train_limit,
                                          test_limit=cfg.test_limit)
        self.train_split = self.data.train.to(self.device)
        self.test_split = self.data.test.to(self.device)
        self.pre = Preprocess(info.family, self.device, self.hp.input_norm)
        self.augment = parse_method(cfg.method).augment

        torch.manual_seed(cfg.seed)
        self.model = build_model(info.name, cfg.method, tol=self.hp.tol, max_iter=self.hp.max_iter,
                                 channels=self.hp.channels, hparams=self.hp,
                                 solver=self.solver).to(self.device)
        # fused: one kernel for all parameters instead of ~10 ops each; a quarter of an L
        # model's step time on CPU goes to the optimizer otherwise. monDEQ: Adam, its protocol.
        opt = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[self.hp.optimizer]
        self.opt = opt(self.model.parameters(), lr=self.hp.lr, weight_decay=self.hp.weight_decay,
                       fused=True)
        self.n_batches = math.ceil(len(self.train_split) / self.hp.batch_size)
        self.sched = make_scheduler(self.opt, self.hp, self.n_batches)
        self.sched_per_step = self.hp.schedule == "cosine"  # MDEQ's; else stepped per epoch
        self.gen = torch.Generator().manual_seed(cfg.seed)  # shuffling and augmentation
        self.record = self._new_record()

    def _new_record(self) -> RunRecord:
        c = self.cfg
        return RunRecord.from_json({
            "format": RECORD_FORMAT, "status": "running",
            "dataset": self.data.info.name, "method": self.model.spec.method.name, "seed": c.seed,
            "data": {k: v for k, v in self.data.stats().items() if k not in ("channels", "size", "classes")},
            "hparams": self.hp.to_dict(), "n_params": n_params(self.model),
            "solver": self.model.spec.solver,
            "torch": torch.__version__, "python": platform.python_version(),
            "device": str(self.device) if self.device.type == "cpu" else torch.cuda.get_device_name(self.device),
            "threads": torch.get_num_threads(),
            "environment": environment(self.device),
            "limits": {"train_limit": c.train_limit, "test_limit": c.test_limit},
            "epochs": [],
        }, str(self.out), finished=False)

    # ----------------------------------------------------------------- checkpoints

    def save_checkpoint(self) -> None:
        atomic_torch_save(self.ckpt, {
            "identity": self.record.identity(), "record": self.record.to_json(),
            "model": self.model.state_dict(), "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(), "gen": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
        })

    def save_weights(self, path: Path) -> None:
        """The final model, small and self-describing: what :func:`load_trained` reads."""
        atomic_torch_save(path, {
            "format": WEIGHTS_FORMAT, "status": self.record.status,
            "run": {k: getattr(self.cfg, k) for k in _MODEL_FIELDS},
            "n_params": self.record.n_params, "epochs_trained": len(self.record.epochs),
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
        })

    def try_resume(self) -> bool:
        """Load the checkpoint if it belongs to this run. Returns True if resumed."""
        if not self.ckpt.exists():
            return False
        # On the CPU: the generator states must be CPU byte tensors whatever the run's device
        # (set_state refuses a CUDA one); load_state_dict moves the rest to the parameters'.
        state = torch.load(self.ckpt, map_location="cpu", weights_only=False)
        if state["identity"] != self.record.identity():
            raise ConfigError(
                f"{self.ckpt} belongs to a different run ({state['identity']['dataset']}, "
                f"{state['identity']['method']}, seed {state['identity']['seed']}, other settings); "
                f"delete it or choose another --out")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.record = RunRecord.from_json(state["record"], str(self.ckpt), finished=False,
                                          path=str(self.out))
        env = environment(self.device)
        if self.record.environment not in (None, env):
            self.record = self.record.with_(resumed=(*(self.record.resumed or ()), {
                "at_epoch": len(self.record.epochs) + 1, "environment": env}))
        return True

    # ----------------------------------------------------------------- epochs

    def _progress(self, it, total: int, desc: str):
        show = self.cfg.progress if self.cfg.progress is not None else sys.stderr.isatty()
        if not show:
            return it
        from tqdm import tqdm
        return tqdm(it, total=total, desc=desc, leave=False, dynamic_ncols=True)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, *, epoch: int = 0,
                   batch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on a preprocessed batch (what training and the benchmark run).

        Returns:
            The logits and the loss (auxiliary terms included) of the batch.

        Raises:
            NonFiniteLoss: the loss is NaN or infinite (nothing was updated).
        """
        model = self.model
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        aux = model.aux_loss()
        if aux is not None:
            loss = loss + aux
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"non-finite loss ({loss.item()}) at epoch {epoch}, batch {batch}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.sched_per_step:
            self.sched.step()
        model.project_()
        return logits, loss

    def train_epoch(self, epoch: int) -> dict:
        model, layers = self.model, self.model.deq_layers()
        model.train()
        stats = _IterStats(len(layers))
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        n_batches = self.n_batches
        tunable = [l for l in layers if l.tunes_alpha]
        jac: list[float] = []
        it = batches(self.train_split, self.hp.batch_size, shuffle_generator=self.gen)
        for b, (xb, yb) in enumerate(self._progress(it, n_batches, f"epoch {epoch}")):
            x = self.pre(xb, self.gen if self.augment else None)
            if tunable and b in (30, n_batches // 2):
                # monDEQ's alpha tuning, where its train.py does it (batch 30 and mid-epoch),
                # before the step, so its trial solves never enter the statistics.
                for layer in tunable:
                    layer.tune_alpha_(lambda: _no_grad_forward(model, x))
            for layer in layers:
                layer.at_step_(epoch, (epoch - 1) * n_batches + b)
            logits, loss = self.train_step(x, yb, epoch=epoch, batch=b + 1)
            jac += [l.last_jac_fro2 for l in layers if l.regularized]
            stats.add(layers, backward=True)
            loss_sum += loss.detach() * len(yb)
            correct += (logits.argmax(1) == yb).sum()
        n = len(self.train_split)
        fwd, fwd_l = stats.summary(stats.fwd)
        bwd, bwd_l = stats.summary(stats.bwd)
        out = {"train_loss": loss_sum.item() / n, "train_acc": 100.0 * correct.item() / n,
               "fwd_iters": fwd, "bwd_iters": bwd, "fwd_iters_per_layer": fwd_l,
               "bwd_iters_per_layer": bwd_l, "max_iter_hits": stats.max_iter_hits}
        if jac:  # DEQ-JR: the Hutchinson estimate of ||J_f(z*)||_F^2 / d, mean over the steps
            out["jac_fro2"] = sum(jac) / len(jac)
        if tunable:
            out["alpha"] = [float(l.alpha) for l in tunable]
        return out

    @torch.no_grad()
    def evaluate(self) -> dict:
        model, layers = self.model, self.model.deq_layers()
        model.eval()
        stats = _IterStats(len(layers))
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        # The invariants pcDEQ's theory needs (W >= 0, layer input x > 0 or >= 0), on the first
        # test batch every epoch: min over the DEQ layers of min W and of min x.
        firsts: dict = {}  # layer -> its input u on the first test batch
        # The stopping rule's norm spans the whole batch: evaluate with the training batch size.
        for b, (xb, yb) in enumerate(batches(self.test_split, self.hp.batch_size)):
            if b == 0:
                with capturing_inputs(model) as firsts:
                    logits = model(self.pre(xb))
            else:
                logits = model(self.pre(xb))
            loss_sum += F.cross_entropy(logits, yb, reduction="sum")
            correct += (logits.argmax(1) == yb).sum()
            stats.add(layers, backward=False)
        n = len(self.test_split)
        fwd, fwd_l = stats.summary(stats.fwd)
        mins = [float(l.inputs(firsts[l]).min()) for l in layers if l in firsts]
        # The layers' own fields (the multiscale families: Lipschitz constant at z* and bound).
        own: dict[str, float] = {}
        for l in layers:
            for k, v in l.epoch_fields(firsts[l]).items():
                own[k] = max(own.get(k, v), v)  # the worst layer
        weights = [l.effective_weight() for l in layers]
        min_w = (min(float(W.min()) for W in weights)
                 if all(isinstance(W, torch.Tensor) for W in weights) else None)  # monDEQ-SC: an operator
        return {"min_weight": min_w, "min_input": min(mins) if mins else None,
                "test_loss": loss_sum.item() / n, "test_acc": 100.0 * correct.item() / n,
                "test_fwd_iters": fwd, "test_fwd_iters_per_layer": fwd_l,
                "test_max_iter_hits": stats.max_iter_hits, **own}

    def run(self) -> RunRecord:
        """Train the remaining epochs, writing checkpoint and record after each one.

        Raises:
            NonFiniteLoss: after writing the record of the finished epochs (status "diverged").
        """
        for epoch in range(len(self.record.epochs) + 1, self.hp.epochs + 1):
            lr = self.opt.param_groups[0]["lr"]
            t0 = time.perf_counter()
            try:
                tr = self.train_epoch(epoch)
            except NonFiniteLoss as e:
                self.record = self.record.with_(status="diverged", diverged_at_epoch=epoch,
                                                error=str(e))
                atomic_write_json(self.out, self.record.to_json())
                if self.cfg.weights:
                    self.save_weights(Path(self.cfg.weights))
                raise
            t1 = time.perf_counter()
            te = self.evaluate()
            t2 = time.perf_counter()
            if not self.sched_per_step:
                self.sched.step()
            hits = tr["max_iter_hits"] + te.pop("test_max_iter_hits")
            entry = {"epoch": epoch, "lr": lr, **tr, **te, "sigma_max": sigma_max(self.model),
                     "max_iter_hits": hits, "seconds": t1 - t0, "eval_seconds": t2 - t1}
            # in the record's field order; a family's own fields (alpha, jac_fro2) only where set
            self.record = self.record.with_epoch(EpochRecord.from_json(
                {k: entry[k] for k in EpochRecord.names() if k in entry},
                f"{self.out}: epoch {epoch}"))
            if hits:
                warnings.warn(f"{hits} fixed-point solve(s) hit max_iter={self.hp.max_iter} in epoch {epoch} "
                              f"of {self.record.method} (counted in the record as max_iter_hits)",
                              RuntimeWarning, stacklevel=2)
            if epoch < self.hp.epochs:  # the last epoch's record is written as complete below
                self.save_checkpoint()  # before the record: the checkpoint is the source of truth
                atomic_write_json(self.out, self.record.to_json())
            if self.cfg.log:
                print(_epoch_line(self.record, self.record.epochs[-1]), file=sys.stderr, flush=True)
        self.record = self.record.with_(status="complete")
        if self.cfg.weights:  # before the record: a complete record implies its weights exist
            self.save_weights(Path(self.cfg.weights))
        atomic_write_json(self.out, self.record.to_json())
        self.ckpt.unlink(missing_ok=True)
        return self.record


def load_trained(path: str | Path, device: str | torch.device = "cpu") -> DEQClassifier:
    """Rebuild a trained model from the weights file of a run (``--weights``).

    Args:
        path: a file written by ``python -m pcdeq train ... --weights PATH`` (the workflow
            writes ``runs/<profile>/<dataset>/<method>/seed<k>.pt`` beside each record).
        device: where to put the model.

    Returns:
        The model in eval mode, built by :func:`pcdeq.build_model` with the run's
        hyperparameters, with its trained parameters and buffers (BN statistics, monDEQ's α).

    Raises:
        ConfigError: the file is not a pcDEQ weights file.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != WEIGHTS_FORMAT:
        raise ConfigError(f"{path} is not a weights file of this project (format {WEIGHTS_FORMAT}); "
                          "write one with python -m pcdeq train ... --weights PATH")
    run = state["run"]
    cfg = RunConfig(**run)
    hp = resolve_hparams(cfg)
    model = build_model(run["dataset"], run["method"], tol=hp.tol, max_iter=hp.max_iter,
                        channels=hp.channels, hparams=hp, solver=resolve_solver(cfg))
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval()


def train(cfg: RunConfig) -> RunRecord:
    """Run (or resume, or skip if already complete) one training run; returns its record.

    Raises:
        ConfigError: bad input, found before any training.
        NonFiniteLoss: training diverged; the record keeps the finished epochs.
    """
    out = Path(cfg.out)
    trainer = Trainer(cfg)
    if out.exists() and not trainer.ckpt.exists():
        try:
            old = RunRecord.load(out)
        except RecordError:  # unfinished, unreadable, another format: train it
            old = None
        weights_ok = not cfg.weights or Path(cfg.weights).exists()
        if (old and old.status == "complete" and weights_ok
                and old.identity() == trainer.record.identity()):
            return old  # already done: an interrupted workflow never redoes finished runs
    if trainer.try_resume() is False:
        trainer.record = trainer._new_record()
    return trainer.run()
