"""The run record: one JSON file per training run, written after every epoch by
:mod:`pcdeq.train` and read by the report, the reproducibility check and the claims.

:class:`RunRecord` and :class:`EpochRecord` are its only definition: the fields, their order
in the file, which may be null, which may be absent (fields added by later releases, or
family-specific ones such as DEQ-JR's ``jac_fro2``), and the checks a file must pass.
``to_json(from_json(x)) == x`` for every record this project writes, key order included, so
a record read and written again is byte-identical.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .hparams import ConfigError, dataset_info, parse_method

RECORD_FORMAT = "pcdeq-run/1"

# What must match for a checkpoint to be resumed by a run (train) and for two records to be
# runs of the same experiment (compare: the rest may differ between machines).
IDENTITY_FIELDS: tuple[str, ...] = ("dataset", "method", "seed", "hparams", "limits", "n_params",
                                    "solver")
COMPARABLE_FIELDS: tuple[str, ...] = ("hparams", "limits", "data", "n_params")
# Where a run ran: the top-level fields, and the keys of ``environment``
# (pcdeq.train.environment), what decides its last digits.
PLACE_FIELDS: tuple[str, ...] = ("device", "threads", "torch", "python", "environment")
ENVIRONMENT_KEYS: tuple[str, ...] = ("cpu", "cpu_capability", "threads", "torch", "onednn",
                                     "cuda", "cudnn", "gpu", "python", "platform")


class RecordError(ValueError):
    """A run record that is missing, malformed or unfinished; the message names the file."""


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


_ABSENT = object()


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch. Fields in file order; None is a JSON null.

    ``present`` names the fields the file has (a field may be absent, e.g. ``alpha`` outside
    monDEQ, ``min_weight`` in records made before it was recorded), so that writing the record
    back reproduces it.
    """

    epoch: int
    lr: float | None = None
    train_loss: float = 0.0
    train_acc: float = 0.0
    test_loss: float = 0.0
    test_acc: float = 0.0
    fwd_iters: float = 0.0  # mean forward iterations per training batch (mean over layers)
    bwd_iters: float = 0.0  # mean backward (adjoint) iterations per training batch
    test_fwd_iters: float = 0.0  # mean forward iterations per test batch
    fwd_iters_per_layer: tuple[float, ...] | None = None  # several DEQ layers (MC): per layer
    bwd_iters_per_layer: tuple[float, ...] | None = None
    test_fwd_iters_per_layer: tuple[float, ...] | None = None
    sigma_max: float | None = None  # largest singular value of W (None where not computed)
    min_weight: float | None = None  # min entry of W over the DEQ layers, first test batch
    min_input: float | None = None  # min layer input x over the DEQ layers, first test batch
    jac_fro2: float | None = None  # DEQ-JR: mean Hutchinson estimate of ||J||_F^2 / d
    alpha: tuple[float, ...] | None = None  # monDEQ: the splitting step per layer
    jac_norm: float | None = None  # multiscale families: ||J_f(z*)||_2 on the first test batch
    jac_bound: float | None = None  # LipMDEQ: the product bound on Lip(f) from the weights
    max_iter_hits: int = 0  # solves that stopped at max_iter (train and test)
    seconds: float | None = None  # training time of the epoch
    eval_seconds: float | None = None
    present: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    REQUIRED = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "fwd_iters",
                "bwd_iters", "test_fwd_iters")
    NULLABLE = ("sigma_max", "jac_fro2", "min_weight", "min_input")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The fields in file order."""
        return tuple(f.name for f in fields(cls) if f.name != "present")

    @classmethod
    def from_json(cls, d: Any, where: str) -> "EpochRecord":
        """Raises: RecordError naming ``where`` (e.g. "x.json: epochs[3]")."""
        if not isinstance(d, dict):
            raise RecordError(f"{where} is not an object")
        for key in cls.REQUIRED:
            if not _is_number(d.get(key)):
                raise RecordError(f"{where}.{key} should be a number, got {d.get(key)!r}")
        for key in cls.NULLABLE:
            if d.get(key) is not None and not _is_number(d[key]):
                raise RecordError(f"{where}.{key} should be a number or null, got {d[key]!r}")
        names = cls.names()
        unknown = [k for k in d if k not in names]
        if unknown:
            raise RecordError(f"{where} has unknown field(s) {', '.join(unknown)}")
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**kw, present=frozenset(d))

    def to_json(self) -> dict:
        out = {}
        for k in self.names():
            if k in self.present or not self.present:
                v = getattr(self, k)
                out[k] = list(v) if isinstance(v, tuple) else v
        return out

    def value(self, key: str) -> float | None:
        """The metric called ``key`` (a field name), None where null or absent."""
        return getattr(self, key) if key in self.present or not self.present else None


# The top-level fields in file order (the order train writes them); those after "epochs" are
# added when they happen (a resume on another machine, a divergence).
_RUN_FIELDS: tuple[str, ...] = (
    "format", "status", "dataset", "method", "seed", "data", "hparams", "n_params", "solver",
    "torch", "python", "device", "threads", "environment", "limits", "epochs", "resumed",
    "diverged_at_epoch", "error")
_REQUIRED: tuple[tuple[str, type], ...] = (
    ("status", str), ("dataset", str), ("method", str), ("seed", int), ("data", dict),
    ("hparams", dict), ("n_params", int), ("epochs", list))
_DATA_KEYS = ("family", "synthetic", "description", "n_train", "n_test")
_HPARAM_KEYS = ("epochs", "lr", "lr_decay_epoch", "weight_decay", "batch_size", "channels")
STATUSES = ("running", "complete", "diverged")


@dataclass(frozen=True)
class RunRecord:
    """One training run: what ran, on what, where, and every finished epoch.

    Attributes:
        status: "running" (epochs still to come), "complete" or "diverged".
        dataset, method, seed: the run (method as the record spells it, e.g. "pcDEQ-1-L-ReLU6").
        data: the data actually used (family, synthetic, description, n_train, n_test, ...).
        hparams: the resolved hyperparameters (pcdeq.hparams.HParams.to_dict()).
        n_params: trainable parameters.
        solver, torch, python, device, threads: how it ran (None in older records).
        environment: where it ran (:data:`ENVIRONMENT_FIELDS`; None in older records).
        limits: {"train_limit", "test_limit"} as asked for (None in older records).
        epochs: the finished epochs.
        resumed: the environments it was resumed in, when not the one it started in.
        diverged_at_epoch, error: for status "diverged".
        path: the file it was read from ("" when built in memory); not written.
    """

    status: str
    dataset: str
    method: str
    seed: int
    data: dict
    hparams: dict
    n_params: int
    epochs: tuple[EpochRecord, ...] = ()
    solver: str | None = None
    torch: str | None = None
    python: str | None = None
    device: str | None = None
    threads: int | None = None
    environment: dict | None = None
    limits: dict | None = None
    resumed: tuple[dict, ...] | None = None
    diverged_at_epoch: int | None = None
    error: str | None = None
    format: str = RECORD_FORMAT
    path: str = field(default="", compare=False)
    present: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_json(cls, rec: Any, where: str = "record", *, finished: bool = True,
                  path: str | None = None) -> "RunRecord":
        """Validate a record's JSON object.

        Args:
            rec: the parsed JSON.
            where: how the message names the record (its path).
            finished: refuse status "running" (what every reader of results wants; a
                checkpoint's record is read with ``finished=False``).
            path: the record's file (default: ``where``).

        Raises:
            RecordError: "<where>: <what is wrong>".
        """
        def bad(msg: str) -> RecordError:
            return RecordError(f"{where}: {msg}")

        if not isinstance(rec, dict):
            raise bad("not a run record (expected a JSON object)")
        if rec.get("format") != RECORD_FORMAT:
            raise bad(f"format is {rec.get('format')!r}, expected {RECORD_FORMAT!r}")
        for key, typ in _REQUIRED:
            if key not in rec:
                raise bad(f"missing field {key!r}")
            if not isinstance(rec[key], typ) or isinstance(rec[key], bool):
                raise bad(f"field {key!r} should be {typ.__name__}, got {type(rec[key]).__name__}")
        if rec["status"] == "running" and finished:
            raise bad("the run is not finished (status 'running'); rerun its training job "
                      "(the same command resumes from its checkpoint)")
        if rec["status"] not in STATUSES:
            raise bad(f"unknown status {rec['status']!r}")
        try:
            method = parse_method(rec["method"])
            info = dataset_info(rec["dataset"])
        except ConfigError as e:
            raise bad(str(e)) from None
        for key in _DATA_KEYS:
            if key not in rec["data"]:
                raise bad(f"missing field 'data.{key}'")
        if rec["data"]["family"] != info.family:
            raise bad(f"data.family {rec['data']['family']!r} does not match dataset {info.name!r}")
        for key in _HPARAM_KEYS:
            if key not in rec["hparams"]:
                raise bad(f"missing field 'hparams.{key}'")
        if not rec["epochs"] and rec["status"] == "complete":
            raise bad("status 'complete' but no finished epoch ('epochs' is empty)")
        epochs = tuple(EpochRecord.from_json(e, f"{where}: epochs[{i}]")
                       for i, e in enumerate(rec["epochs"]))
        for i, e in enumerate(epochs):
            if e.epoch != i + 1:
                raise bad(f"epochs[{i}].epoch is {e.epoch}, expected {i + 1}")
        if rec["status"] == "complete" and len(epochs) != rec["hparams"]["epochs"]:
            raise bad(f"status 'complete' but {len(epochs)} of {rec['hparams']['epochs']} "
                      "epochs recorded")
        unknown = [k for k in rec if k not in _RUN_FIELDS]
        if unknown:
            raise bad(f"unknown field(s) {', '.join(unknown)}")
        kw = {k: v for k, v in rec.items() if k != "epochs"}
        kw["method"] = method.name  # the canonical spelling
        if isinstance(kw.get("resumed"), list):
            kw["resumed"] = tuple(kw["resumed"])
        if path is None:
            path = where if where != "record" else ""
        return cls(**kw, epochs=epochs, path=path, present=frozenset(rec))

    @classmethod
    def load(cls, path: str | Path) -> "RunRecord":
        """Read and validate one finished record file.

        Raises:
            RecordError: unreadable, not JSON, or :meth:`from_json` refuses it; the message
                starts with the path.
        """
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise RecordError(f"{p}: cannot read run record ({e.strerror or e})") from None
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as e:
            raise RecordError(f"{p}: not valid JSON (line {e.lineno}, column {e.colno}: "
                              f"{e.msg})") from None
        return cls.from_json(rec, str(p))

    # ------------------------------------------------------------------ writing
    def to_json(self) -> dict:
        """The JSON object, fields in file order; absent fields stay absent."""
        out: dict = {}
        for k in _RUN_FIELDS:
            if self.present and k not in self.present:
                continue
            v = getattr(self, k)
            if not self.present and v is None and k in ("resumed", "diverged_at_epoch", "error"):
                continue  # only written when they happen
            if k == "epochs":
                v = [e.to_json() for e in v]
            elif k == "resumed" and v is not None:
                v = list(v)
            out[k] = v
        return out

    def with_epoch(self, e: EpochRecord) -> "RunRecord":
        return replace(self, epochs=(*self.epochs, e))

    def with_(self, **changes: Any) -> "RunRecord":
        """A copy with ``changes``; a field set this way is written even if it was absent."""
        present = self.present | set(changes) if self.present else self.present
        return replace(self, **changes, present=present)

    # ------------------------------------------------------------------ reading aids
    def identity(self) -> dict:
        """What a checkpoint must match to be resumed by this run (:data:`IDENTITY_FIELDS`)."""
        return {k: getattr(self, k) for k in IDENTITY_FIELDS}

    def series(self, key: str) -> list[float | None]:
        """Per-epoch values of the metric ``key`` (an :class:`EpochRecord` field; None where
        the record has null or lacks it)."""
        return [None if e.value(key) is None else float(e.value(key)) for e in self.epochs]

    def median(self, key: str) -> float | None:
        """The median over the epochs of the metric ``key`` (None where no epoch has it).

        What the artifacts print as a run's ``seconds`` per epoch: one epoch paused or slowed
        by a co-running job on a shared core moves a mean, not the median.
        """
        vals = [v for v in self.series(key) if v is not None]
        return statistics.median(vals) if vals else None

    @property
    def family(self) -> str:
        """The data set family ("mnist", "svhn", "cifar10")."""
        return self.data["family"]

    @property
    def arch(self) -> str:
        """The size key: ``L``, ``SC``, ``MC``, ``MC*`` (augmented MC) or ``MS``."""
        return parse_method(self.method).arch_key

    @property
    def activation(self) -> str:
        return parse_method(self.method).activation

    @property
    def group(self) -> str:
        """The method's group: pcDEQ, monDEQ, DEQ, DEQ-JR or LipDEQ."""
        return parse_method(self.method).group

    @property
    def final_acc(self) -> float:
        return float(self.epochs[-1].test_acc)

    @property
    def best_acc(self) -> float:
        return max(float(e.test_acc) for e in self.epochs)
