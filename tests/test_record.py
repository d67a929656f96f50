"""The run record (pcdeq.record): one definition that every record this project wrote
round-trips through byte for byte, with errors that name the file and the field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pcdeq.record import (ENVIRONMENT_KEYS, IDENTITY_FIELDS, EpochRecord, RecordError,
                          RunRecord)

ROOT = Path(__file__).resolve().parents[1]
RECORDS = sorted(p for d in ("results", "tests/data") for p in (ROOT / d).rglob("*.json")
                 if '"format": "pcdeq-run/1"' in p.read_text()[:200])


def test_every_committed_record_round_trips_byte_for_byte():
    assert len(RECORDS) > 150  # results/quick, results/fashion, the test data
    for p in RECORDS:
        raw = json.loads(p.read_text())
        rec = RunRecord.from_json(raw, str(p), finished=False)
        assert json.dumps(rec.to_json(), indent=1) == json.dumps(raw, indent=1), p


def test_fields_read_as_attributes_and_absent_ones_as_none():
    p = ROOT / "results" / "quick" / "mnist5k" / "monDEQ-L" / "seed0.json"
    rec = RunRecord.load(p)
    assert rec.group == "monDEQ" and rec.arch == "L" and rec.family == "mnist"
    e = rec.epochs[-1]
    assert e.alpha is not None and e.jac_fro2 is None and "jac_fro2" not in e.to_json()
    assert rec.series("test_acc")[-1] == rec.final_acc
    assert set(rec.identity()) == set(IDENTITY_FIELDS)
    assert tuple(rec.environment) == ENVIRONMENT_KEYS


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.update(format="pcdeq-run/0"), "format is 'pcdeq-run/0'"),
    (lambda r: r.pop("n_params"), "missing field 'n_params'"),
    (lambda r: r.update(status="running"), "not finished (status 'running')"),
    (lambda r: r["epochs"][3].update(train_loss="x"), "epochs[3].train_loss should be a number"),
    (lambda r: r["epochs"][2].update(epoch=9), "epochs[2].epoch is 9, expected 3"),
    (lambda r: r["epochs"][0].update(fwd_iter=3.0), "epochs[0] has unknown field(s) fwd_iter"),
    (lambda r: r.update(method="pcDEQ-3-L-Tanh"), "pcDEQ-3"),
    (lambda r: r["data"].update(family="svhn"), "data.family 'svhn' does not match"),
    (lambda r: r["epochs"].pop(), "status 'complete' but 19 of 20 epochs recorded"),
])
def test_bad_records_are_refused_naming_the_file_and_the_field(tmp_path, edit, message):
    raw = json.loads((ROOT / "results" / "quick" / "mnist5k" / "pcDEQ-1-L-Tanh" / "seed0.json").read_text())
    edit(raw)
    p = tmp_path / "seed0.json"
    p.write_text(json.dumps(raw))
    with pytest.raises(RecordError) as err:
        RunRecord.load(p)
    assert str(err.value).startswith(str(p)) and message in str(err.value), str(err.value)


def test_an_epoch_built_in_memory_writes_only_its_fields():
    e = EpochRecord.from_json({"epoch": 1, "train_loss": 0.5, "train_acc": 80.0, "test_loss": 0.6,
                               "test_acc": 79.0, "fwd_iters": 7.0, "bwd_iters": 5.0,
                               "test_fwd_iters": 7.5}, "e")
    assert list(e.to_json()) == ["epoch", "train_loss", "train_acc", "test_loss", "test_acc",
                                 "fwd_iters", "bwd_iters", "test_fwd_iters"]
    assert e.value("sigma_max") is None and e.value("fwd_iters") == 7.0


def test_the_core_does_not_import_the_report():
    code = ("import sys; import pcdeq, pcdeq.train, pcdeq.models, pcdeq.solver, pcdeq.data; "
            "bad = [m for m in sys.modules if m.startswith(('pcdeq.report', 'pcdeq.claims', "
            "'pcdeq.paper_claims', 'pcdeq.theory', 'pcdeq.compare', 'pcdeq.reproducibility'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
