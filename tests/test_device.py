"""The CUDA path, checked without a GPU.

Device placement: with ``torch.set_default_device("meta")`` while model and data live on the
CPU, any tensor the training or evaluation code creates without an explicit device lands on
``meta`` and fails as soon as it meets a CPU tensor, as it would meet a CUDA tensor on a GPU
run (where it would land on the CPU). Every family and architecture runs a training step, a
training epoch, an evaluation and a checkpoint under it.

The GPU check (``python -m pcdeq gpu-check``): without CUDA it exits 2 at once; its committed
CPU reference covers every case with the check's sizes and seeds; its runs are the reference
commands' runs; and the pipeline (train, compare, time) runs end to end on the CPU with
nothing beyond torch and pcdeq's core importable.
"""

import contextlib
import functools
import json
import math
import subprocess
import sys

import pytest
import torch

from pcdeq import cli, gpu_check
from pcdeq.data import Preprocess, Split, batches
from pcdeq.hparams import hyperparameters, parse_method
from pcdeq.report.records import find_records, load_run
from pcdeq.train import RunConfig, Trainer

from conftest import DATA, REPO

REFERENCE = gpu_check.DEFAULT_REFERENCE
# What a GPU box may lack: the workflow's and the notebooks' packages, and torchvision (the
# shipped mnist5k needs none).
HEAVY = ("snakemake", "papermill", "pandas", "matplotlib", "yaml", "nbformat", "jupyter",
         "scipy", "sklearn", "torchvision")


@pytest.fixture(autouse=True, scope="module")
def _small_and_fast():
    """Every trainer here reads the same few images: parse the CSV once (the tests never
    change the data); one thread: these tiny batches only lose by a second one."""
    import pcdeq.train
    cached = functools.lru_cache(maxsize=None)(pcdeq.train.load_dataset)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(pcdeq.train, "load_dataset", cached)
            yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def default_device(device):
    before = torch.get_default_device()
    torch.set_default_device(device)
    try:
        yield
    finally:
        torch.set_default_device(before)


def _trainer(tmp_path, method, **kw):
    base = dict(dataset="mnist5k", method=method, out=str(tmp_path / "run.json"), epochs=1,
                train_limit=16, test_limit=16, data_root=str(DATA), device="cpu", log=False,
                progress=False)
    return Trainer(RunConfig(**{**base, **kw}))


def _finite(x):
    return x is None or (isinstance(x, (int, float)) and math.isfinite(x)) or (
        isinstance(x, list) and all(_finite(v) for v in x))


# ------------------------------------------------------------------ the meta trick itself
def test_meta_default_catches_a_tensor_made_without_a_device():
    """The negative control: the trick fails loudly on the mistake it is meant to find."""
    on_cpu = torch.ones(3)

    def sloppy(x):
        return torch.zeros(3) + x  # no device: the default device's

    def careful(x):
        return torch.zeros(3, device=x.device) + x

    with default_device("meta"):
        with pytest.raises(RuntimeError, match="meta"):
            sloppy(on_cpu)
        with pytest.raises(RuntimeError, match="meta"):
            torch.zeros(()) + on_cpu  # a 0-dim one too (on a GPU run: a CPU scalar, tolerated)
        assert careful(on_cpu).device.type == "cpu"
    assert torch.zeros(1).device.type == "cpu"  # restored


# ------------------------------------------------------------------ every family x architecture
def test_the_cases_cover_every_family_and_architecture():
    want = {(g, a) for g in ("pcDEQ", "monDEQ", "DEQ", "DEQ-JR", "LipDEQ") for a in ("L", "SC", "MC")
            if (g, a) != ("monDEQ", "MC")}  # monDEQ has no MC model
    got = [(parse_method(m).group, parse_method(m).arch) for m in gpu_check.CASES]
    assert sorted(got) == sorted(want)
    assert {parse_method(m).variant for m in gpu_check.CASES if parse_method(m).is_pcdeq} == {1, 2}


# The multiscale models (Table 10) are not cases of the GPU check (its reference is the paper's
# families); their code path is checked here all the same.
MULTISCALE = ("MDEQ-MS", "LipMDEQ-MS", "LipMDEQ-cert-MS", "pcDEQ-1-MS-Tanh", "pcDEQ-2-MS-Sigmoid")


def test_the_multiscale_cases_cover_every_family_with_a_multiscale_model():
    from pcdeq.hparams import METHOD_FAMILIES
    want = {f.name for f in METHOD_FAMILIES.values() if "MS" in f.archs}
    assert {parse_method(m).family for m in MULTISCALE} == want
    assert all(parse_method(m).arch == "MS" for m in MULTISCALE)


@pytest.mark.filterwarnings("ignore:.*hit max_iter:RuntimeWarning")
@pytest.mark.parametrize("method", gpu_check.CASES + MULTISCALE)
def test_training_and_evaluation_create_no_tensor_without_a_device(tmp_path, method):
    # Built (data loaded, model initialized) on the CPU default; a short max_iter: placement,
    # not convergence, is tested (monDEQ's alpha tuning would otherwise solve to 300 per trial).
    # MDEQ's first epochs are unrolled (its pretraining): one more epoch runs the implicit path
    # inside train_epoch and evaluate too (iteration statistics, test_fwd_iters), not only in
    # the single train_step below
    epochs = 1 + (hyperparameters("mnist5k", method).pretrain_epochs or 0)
    tr = _trainer(tmp_path, method, max_iter=25, epochs=epochs)
    xb, yb = next(batches(tr.train_split, tr.hp.batch_size))
    with default_device("meta"):
        # One optimizer step on a preprocessed slice, then a whole run: batching with
        # shuffling, monDEQ's alpha tuning (batch 0 is mid-epoch of a 1-batch epoch), the
        # iteration statistics, the evaluation, sigma_max and the record.
        logits, loss = tr.train_step(tr.pre(xb[:8]), yb[:8])
        rec = tr.run().to_json()
    assert logits.device.type == "cpu" and loss.device.type == "cpu"
    assert torch.isfinite(logits).all() and torch.isfinite(loss)
    assert rec["status"] == "complete" and rec["device"] == "cpu"
    assert len(rec["epochs"]) == epochs
    e = rec["epochs"][-1]
    for k in ("train_loss", "train_acc", "test_loss", "test_acc", "fwd_iters", "bwd_iters",
              "test_fwd_iters", "sigma_max", "min_weight", "min_input", "jac_fro2", "alpha",
              "jac_norm", "jac_bound"):
        assert _finite(e.get(k)), (k, e.get(k))
    assert e["fwd_iters"] >= 1 and e["bwd_iters"] >= 1 and 0 <= e["test_acc"] <= 100
    assert all(p.device.type == "cpu" for p in tr.model.parameters())
    assert torch.zeros(1).device.type == "cpu"


def test_checkpoint_and_resume_create_no_tensor_without_a_device(tmp_path):
    tr = _trainer(tmp_path, "DEQ-JR-L-Tanh", epochs=2)
    again = _trainer(tmp_path, "DEQ-JR-L-Tanh", epochs=2)  # a trainer is built on the CPU default
    with default_device("meta"):
        tr.train_epoch(1)
        tr.save_checkpoint()  # model, optimizer, scheduler, generator and RNG states
        assert again.try_resume()
        rec = again.run().to_json()  # both epochs (none was recorded), a checkpoint after the first
    assert [e["epoch"] for e in rec["epochs"]] == [1, 2] and rec["status"] == "complete"
    assert not again.ckpt.exists()


def test_resume_restores_the_generators_whatever_the_runs_device(tmp_path):
    """A checkpoint loaded for a run on another device (meta stands in for CUDA: a state
    mapped there cannot be set into a CPU generator) resumes: the RNG states stay on the CPU."""
    tr = _trainer(tmp_path, "pcDEQ-1-L-ReLU6", epochs=2)
    tr.train_epoch(1)
    tr.save_checkpoint()
    again = _trainer(tmp_path, "pcDEQ-1-L-ReLU6", epochs=2)
    again.device = torch.device("meta")  # where torch.load would map the checkpoint's tensors
    assert again.try_resume()
    assert torch.equal(again.gen.get_state(), tr.gen.get_state())
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(),
                                                 tr.model.state_dict().values()))


def test_augmentation_and_shuffling_create_no_tensor_without_a_device():
    """The CIFAR-10 ``*`` augmentation and the shuffled batches draw on the CPU generator."""
    split = Split(torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8), torch.arange(10))
    pre = Preprocess("cifar10", "cpu")
    with default_device("meta"):
        g = torch.Generator().manual_seed(0)
        xs = [pre(xb, g) for xb, _ in batches(split, 4, shuffle_generator=g)]
    g = torch.Generator().manual_seed(0)
    ref = [pre(xb, g) for xb, _ in batches(split, 4, shuffle_generator=g)]
    assert all(x.device.type == "cpu" for x in xs)
    assert all(torch.equal(a, b) for a, b in zip(xs, ref))  # the same draws as without meta


# ------------------------------------------------------------------ the GPU check
@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible: the check would run")
def test_gpu_check_without_cuda_exits_2_at_once(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pcdeq", "gpu-check", "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "no CUDA GPU visible to torch" in r.stderr and "machine with a GPU" in r.stderr
    assert not (tmp_path / "out").exists()  # at once: nothing written, no run started


def test_committed_reference_covers_every_case_with_the_check_sizes():
    planned = {gpu_check.record_file(REFERENCE, m, s): (m, s) for m, s in gpu_check.planned_runs()}
    assert set(find_records(REFERENCE)) == set(planned)  # nothing missing, nothing extra
    for path, (method, seed) in planned.items():
        run = load_run(path)  # validated
        size = gpu_check.case_size(method)
        raw = json.loads(path.read_text())
        assert (run.dataset, run.method, run.seed, run.status) == (gpu_check.DATASET, method, seed, "complete")
        assert len(run.epochs) == run.hparams["epochs"] == size.epochs
        assert raw["limits"] == {"train_limit": size.train_limit, "test_limit": size.test_limit}
        assert (run.data["n_train"], run.data["n_test"]) == (size.train_limit, size.test_limit)
        assert run.hparams["batch_size"] == (size.batch_size or hyperparameters(run.dataset, method).batch_size)
        assert raw["device"] == "cpu" and raw["threads"] == gpu_check.REFERENCE_THREADS
        assert all(e.seconds > 0 for e in run.epochs)
    files = [p for p in REFERENCE.rglob("*") if p.is_file()]
    assert all(p.suffix == ".json" for p in files)  # records only: no weights, no checkpoints
    assert sum(p.stat().st_size for p in files) < 1_000_000


def test_the_check_runs_are_the_reference_commands_runs(monkeypatch, tmp_path):
    """What --make-reference runs on the CPU (``python -m pcdeq train ...``) and what the
    check trains in-process on the GPU are the same RunConfig, device aside."""
    import pcdeq.train
    from pcdeq.record import EpochRecord, RunRecord
    seen = []

    def fake_train(cfg):
        seen.append(cfg)
        return RunRecord("complete", cfg.dataset, cfg.method, cfg.seed, {}, {}, 0,
                         (EpochRecord(epoch=1, test_acc=0.0),))

    monkeypatch.setattr(pcdeq.train, "train", fake_train)
    for m, s in gpu_check.planned_runs(seeds=(1,)):
        args = gpu_check.reference_commands(tmp_path, DATA, [m], [s])[0][3:]  # after "-m pcdeq"
        assert cli.main(args) == 0
        want = gpu_check.run_config(m, s, tmp_path, device="cpu", threads=gpu_check.REFERENCE_THREADS,
                                    data_root=DATA)
        assert seen[-1] == want
        gpu = gpu_check.run_config(m, s, tmp_path, device="cuda", threads=None, data_root=DATA)
        assert {k: v for k, v in vars(gpu).items() if k not in ("device", "threads")} == \
            {k: v for k, v in vars(want).items() if k not in ("device", "threads")}


def test_gpu_check_pipeline_end_to_end_on_the_cpu_with_torch_and_core_only(tmp_path):
    """The hidden ``--device cpu``: one L case, one seed, trained, compared with the committed
    record and timed, in a Python where Snakemake, Papermill, pandas, matplotlib... cannot be
    imported."""
    code = ("import sys\n"
            f"for m in {HEAVY!r}: sys.modules[m] = None\n"
            "from pcdeq.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", code, "gpu-check", "--device", "cpu", "--threads", "1",
                        "--only", "pcDEQ-1-L-ReLU6", "--seeds", "0", "--out", str(out)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS" in r.stdout and "| pcDEQ-1-L-ReLU6 |" in r.stdout and "speed-up" in r.stdout
    assert "use_deterministic_algorithms=True" in r.stdout
    rec = json.loads(gpu_check.record_file(out, "pcDEQ-1-L-ReLU6", 0).read_text())
    assert rec["status"] == "complete" and len(rec["epochs"]) == gpu_check.SIZES["L"].epochs
    assert (out / "report.md").exists()


def test_gpu_check_refuses_bad_input_before_any_work(tmp_path):
    assert gpu_check.main(["--only", "pcDEQ-9-L-ReLU6", "--out", str(tmp_path / "o")]) == 2
    assert gpu_check.main(["--seeds", "7", "--out", str(tmp_path / "o")]) == 2
    assert gpu_check.main(["--device", "cpu", "--reference", str(tmp_path / "none"),
                           "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()
