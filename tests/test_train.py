"""Training runs: records, CLI, resume == uninterrupted, determinism, errors, learning."""

import json
import subprocess
import sys

import pytest
import torch

from pcdeq import ConfigError
from pcdeq.data import DatasetMissing, load_dataset
from pcdeq.train import NonFiniteLoss, RunConfig, Trainer, checkpoint_path, train

from conftest import DATA, REPO

TIMING = ("seconds", "eval_seconds")
EPOCH_KEYS = {"epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "fwd_iters", "bwd_iters",
              "test_fwd_iters", "fwd_iters_per_layer", "bwd_iters_per_layer", "test_fwd_iters_per_layer",
              "sigma_max", "min_weight", "min_input", "max_iter_hits", "seconds", "eval_seconds"}


def _cfg(tmp_path, **kw):
    base = dict(dataset="mnist5k", method="pcDEQ-1-L-ReLU6", seed=3, out=str(tmp_path / "run.json"),
                epochs=3, train_limit=512, test_limit=256, data_root=str(DATA), log=False, progress=False)
    return RunConfig(**{**base, **kw})


def _strip_timing(rec):
    return {**rec, "epochs": [{k: v for k, v in e.items() if k not in TIMING} for e in rec["epochs"]]}


def test_cli_end_to_end_writes_valid_record(tmp_path):
    out = tmp_path / "sub" / "run.json"
    r = subprocess.run([sys.executable, "-m", "pcdeq", "train", "--dataset", "mnist5k", "--method",
                        "pcdeq-2-mc-sigmoid", "--seed", "1", "--out", str(out), "--epochs", "2",
                        "--train-limit", "128", "--test-limit", "64", "--data-root", str(DATA), "--quiet"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rec = json.loads(out.read_text())
    assert rec["status"] == "complete" and rec["method"] == "pcDEQ-2-MC-Sigmoid"
    assert rec["n_params"] == 41_278 and rec["seed"] == 1 and rec["device"] == "cpu"
    assert rec["data"]["n_train"] == 128 and rec["data"]["n_test"] == 64 and not rec["data"]["synthetic"]
    assert rec["hparams"]["epochs"] == 2 and rec["hparams"]["lr"] == 2e-4 and rec["hparams"]["weight_decay"] == 0.015
    assert [e["epoch"] for e in rec["epochs"]] == [1, 2]
    for e in rec["epochs"]:
        assert set(e) == EPOCH_KEYS
        assert 0 <= e["test_acc"] <= 100 and e["fwd_iters"] >= 1 and e["bwd_iters"] >= 1
        assert len(e["fwd_iters_per_layer"]) == len(e["test_fwd_iters_per_layer"]) == 3
        assert e["fwd_iters"] == pytest.approx(sum(e["fwd_iters_per_layer"]) / 3)
        assert e["sigma_max"] is None and e["max_iter_hits"] == 0
        # pcDEQ-2's invariants, recorded every epoch: W >= 0 (projection), x = relu(u) >= 0.
        assert e["min_weight"] >= 0.0 and e["min_input"] >= 0.0
    env = rec["environment"]
    assert env["threads"] == rec["threads"] and env["torch"] == torch.__version__
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and env["gpu"] is None
    assert not checkpoint_path(out).exists()


@pytest.mark.parametrize("args,match", [
    (["--method", "pcDEQ-2-L-ReLU6"], "Lemma 4.2"),
    # the multiscale pcDEQ's map is covered by Proposition 4.6 only with Remark 4.1's activations
    (["--method", "pcDEQ-2-MS-ReLU6"], "Lemma 4.2"),
    (["--method", "pcDEQ-1-MS-Sigmoid"], "pcDEQ-1"),
    (["--method", "pcDEQ-3-L-ReLU6"], "unknown method"),
    (["--dataset", "mnist6k"], "unknown dataset 'mnist6k'; valid: mnist, mnist5k"),
    (["--dataset", "svhn", "--data-root", "EMPTY"], "Offline, put these files into"),
    # output paths that could not be written: refused before the data is read (a bad
    # --data-root alongside would be the error otherwise), not after an epoch or the last one
    (["--out", "DIR", "--data-root", "EMPTY"], r"--out .* is a folder; name a file in it"),
    (["--weights", "UNDER_FILE", "--data-root", "EMPTY"], r"--weights .*: .*afile is a file, not a folder"),
    (["--lr", "inf"], "--lr must be a positive finite number, got inf"),
    (["--method", "DEQ-JR-L-Tanh", "--jr-weight", "nan"], "--jr-weight must be a finite number >= 0"),
    (["--device", "cuda:x"], "unknown device 'cuda:x'"),
])
def test_cli_bad_input_fails_before_work(tmp_path, args, match):
    base = {"--dataset": "mnist5k", "--method": "pcDEQ-1-L-ReLU6", "--out": str(tmp_path / "r.json"),
            "--data-root": str(DATA)}
    (tmp_path / "afile").write_text("")
    special = {"EMPTY": tmp_path / "empty", "DIR": tmp_path, "UNDER_FILE": tmp_path / "afile" / "w.pt"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = str(special.get(v, v))
    if base["--dataset"] == "svhn":
        base["--method"] = "pcDEQ-1-SC-ReLU6"
    cmd = [sys.executable, "-m", "pcdeq", "train"] + [s for kv in base.items() for s in kv]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and __import__("re").search(match, r.stderr), r.stderr
    assert not (tmp_path / "r.json").exists()


# A conv model too: channels-last weights, BN running stats and the augmentation RNG must resume;
# and the Lipschitz MDEQ, whose cap keeps a power-iteration vector per convolution as state.
@pytest.mark.parametrize("kw", [{}, dict(dataset="synthetic-cifar10", method="pcDEQ-1-MC-ReLU6*",
                                         train_limit=64, test_limit=32),
                                dict(method="LipMDEQ-MS", train_limit=128, test_limit=32)],
                         ids=["L", "MC*", "LipMDEQ-MS"])
def test_resume_equals_uninterrupted(tmp_path, monkeypatch, kw):
    full = train(_cfg(tmp_path / "a", **kw)).to_json()
    calls = {"n": 0}
    orig = Trainer.train_epoch

    def crash_in_epoch_3(self, epoch):
        calls["n"] += 1
        if epoch == 3:
            raise KeyboardInterrupt
        return orig(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", crash_in_epoch_3)
    cfg = _cfg(tmp_path / "b", **kw)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    partial = json.loads((tmp_path / "b" / "run.json").read_text())
    assert partial["status"] == "running" and len(partial["epochs"]) == 2
    assert checkpoint_path(tmp_path / "b" / "run.json").exists()
    monkeypatch.setattr(Trainer, "train_epoch", orig)
    resumed = train(cfg).to_json()
    assert _strip_timing(resumed) == _strip_timing(full)
    # A finished run is not redone.
    monkeypatch.setattr(Trainer, "run", lambda self: pytest.fail("finished run was redone"))
    assert train(cfg).to_json() == resumed


def test_deterministic_and_seed_dependent(tmp_path):
    a = train(_cfg(tmp_path / "a", epochs=2)).to_json()
    b = train(_cfg(tmp_path / "b", epochs=2)).to_json()
    c = train(_cfg(tmp_path / "c", epochs=2, seed=4)).to_json()
    assert _strip_timing(a) == _strip_timing(b)
    assert a["epochs"][-1]["train_loss"] != c["epochs"][-1]["train_loss"]


def test_non_finite_loss_stops_and_keeps_finished_epochs(tmp_path, monkeypatch):
    orig = Trainer.train_epoch

    def poison_epoch_2(self, epoch):
        if epoch == 2:
            with torch.no_grad():
                self.model.head.weight.fill_(float("nan"))
        return orig(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", poison_epoch_2)
    with pytest.raises(NonFiniteLoss, match="epoch 2"):
        train(_cfg(tmp_path))
    rec = json.loads((tmp_path / "run.json").read_text())
    assert rec["status"] == "diverged" and rec["diverged_at_epoch"] == 2 and len(rec["epochs"]) == 1


def test_max_iter_hits_are_counted_and_warned(tmp_path):
    with pytest.warns(RuntimeWarning, match="hit max_iter=2"):
        rec = train(_cfg(tmp_path, max_iter=2, epochs=1)).to_json()
    assert rec["epochs"][0]["max_iter_hits"] > 0
    assert rec["hparams"]["max_iter"] == 2


def test_checkpoint_of_another_run_is_refused(tmp_path, monkeypatch):
    orig = Trainer.train_epoch

    def crash_in_epoch_2(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return orig(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path))
    monkeypatch.setattr(Trainer, "train_epoch", orig)
    with pytest.raises(ConfigError, match="belongs to a different run"):
        train(_cfg(tmp_path, seed=99))


def test_missing_dataset_names_files_and_torchvision(tmp_path):
    with pytest.raises(DatasetMissing, match="torchvision downloads it.*\n.*Offline, put these files into .*MNIST/raw"):
        load_dataset("mnist", tmp_path)


def test_bad_overrides_refused(tmp_path):
    with pytest.raises(ConfigError, match="--lr must be a positive finite number"):
        Trainer(_cfg(tmp_path, lr=-1.0))
    with pytest.raises(ConfigError, match="--tol must be a positive finite number, got nan"):
        Trainer(_cfg(tmp_path, tol=float("nan")))
    with pytest.raises(ConfigError, match="no CUDA GPU") if not torch.cuda.is_available() else pytest.raises(ConfigError):
        Trainer(_cfg(tmp_path, device="cuda" if not torch.cuda.is_available() else "tpu"))


def test_a_cuda_index_torch_does_not_see_is_refused(monkeypatch):
    from pcdeq.train import resolve_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"'cuda:7': torch sees 1 CUDA GPU\(s\), cuda:0 to cuda:0"):
        resolve_device("cuda:7")
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ConfigError, match="unknown device 'cuda0'"):
        resolve_device("cuda0")


def test_learns_real_mnist5k(tmp_path):
    """pcDEQ-1-L-ReLU6 reaches >= 90% test accuracy on the real MNIST 5k subset in 5 epochs."""
    rec = train(_cfg(tmp_path, epochs=5, train_limit=None, test_limit=None, seed=0)).to_json()
    assert rec["data"]["n_train"] == 4000 and rec["data"]["n_test"] == 1000
    assert rec["epochs"][-1]["test_acc"] >= 90.0
    sig = [e["sigma_max"] for e in rec["epochs"]]
    assert all(s is not None and s > 0 for s in sig)


# ------------------------------------------------------------------- final weights
@pytest.mark.parametrize("method", ["pcDEQ-2-MC-Sigmoid", "monDEQ-L", "LipDEQ-L-Tanh", "LipMDEQ-MS"])
def test_weights_rebuild_the_trained_model(tmp_path, method):
    """load_trained gives back the model that was evaluated: same test accuracy as the
    record's last epoch (same batches), same parameter count, buffers included (BN, α)."""
    from pcdeq import load_trained
    from pcdeq.data import Preprocess, batches
    from pcdeq.hparams import hyperparameters

    weights = tmp_path / "run.pt"
    rec = train(_cfg(tmp_path, method=method, epochs=1, train_limit=256, test_limit=128,
                     weights=str(weights))).to_json()
    model = load_trained(weights)
    assert not model.training and sum(p.numel() for p in model.parameters()) == rec["n_params"]
    hp = hyperparameters("mnist5k", method)
    pre = Preprocess("mnist", "cpu", hp.input_norm)
    test = load_dataset("mnist5k", DATA, test_limit=128).test
    correct = 0
    with torch.no_grad():
        for xb, yb in batches(test, hp.batch_size):
            correct += int((model(pre(xb)).argmax(1) == yb).sum())
    assert 100.0 * correct / 128 == rec["epochs"][-1]["test_acc"]


def test_weights_missing_reruns_a_complete_run_and_bad_file_is_refused(tmp_path):
    from pcdeq import load_trained

    train(_cfg(tmp_path, epochs=1, train_limit=128, test_limit=64))
    weights = tmp_path / "w.pt"
    train(_cfg(tmp_path, epochs=1, train_limit=128, test_limit=64, weights=str(weights)))
    assert weights.exists()  # a complete record without its weights is not taken as done
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="not a weights file"):
        load_trained(tmp_path / "other.pt")


def test_fashion_mnist_offline_error_names_both_ways(tmp_path, monkeypatch):
    """Offline, without data/FashionMNIST/raw/ and without Debian's package: the error says
    how to get the files either way, before any training."""
    import torchvision

    import pcdeq.data as data

    def offline(*a, **k):
        raise OSError("Name or service not known")

    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(DatasetMissing) as err:
        Trainer(_cfg(tmp_path, dataset="fashion_mnist", data_root=str(tmp_path / "data")))
    msg = str(err.value)
    assert "FashionMNIST/raw" in msg and "train-images-idx3-ubyte" in msg
    assert "apt install dataset-fashion-mnist" in msg
