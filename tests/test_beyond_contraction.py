"""Figure 15's study (pcdeq.beyond_contraction): the theorem tested where Banach's theorem
does not apply, and the negative controls that the same code must flag."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from pcdeq import beyond_contraction as bc, claims
from pcdeq.paper_claims.from_models import evidence_to_json

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "results" / "quick"
FAST = bc.Settings(scales=(1.0, 10.0), n_starts=6, images_l=3, max_iter=800, power_iters=60)


def _map(W: torch.Tensor, x: torch.Tensor, act: str = "tanh", positive: bool = True) -> bc.ScaledMap:
    return bc.ScaledMap("synthetic", "test", W.double(), x.double(), act, 1.0, positive)


def _nonnegative(n: int, norm: float, seed: int = 0) -> torch.Tensor:
    W = torch.rand(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return W * norm / torch.linalg.matrix_norm(W, 2)


def test_thompson_metric():
    u = torch.tensor([[1.0, 2.0, 4.0]], dtype=torch.float64)
    v = torch.tensor([[2.0, 2.0, 1.0]], dtype=torch.float64)
    assert float(bc.thompson(u, v)) == pytest.approx(math.log(4.0))
    assert float(bc.thompson(u, u)) == 0.0


def test_pcdeq_map_far_from_a_contraction_has_one_limit_and_contracts_in_thompson():
    """||W||_2 = 3 and tanh: Lip(σ)·||W|| = 3 (Banach says nothing), yet one limit from every
    start, and no measured Thompson ratio reaches 1."""
    W = _nonnegative(12, 3.0)
    x = 0.01 * torch.rand(3, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 1e-3
    m = bc.measure(_map(W, x), FAST)
    assert m.l2_bound == pytest.approx(3.0)
    assert m.unique and m.converged == m.starts * m.images == 21
    assert m.iters is not None and m.rate is not None and m.rate < 1
    assert bc.worst_thompson(m) < 1
    # scaled far up the iteration saturates tanh: still one limit, fewer iterations
    m10 = bc.measure(_map(W, x).scaled(10.0), FAST)
    assert m10.unique and m10.iters <= m.iters


def test_jacobian_norm_and_radius_of_a_conv_map_match_the_dense_jacobian():
    torch.manual_seed(0)
    W = torch.rand(2, 2, 3, 3, dtype=torch.float64) * 0.3
    x = torch.rand(1, 2, 4, 4, dtype=torch.float64) + 0.1
    g = _map(W, x, "softsign")
    z = g(torch.zeros_like(x))
    J = torch.autograd.functional.jacobian(g, z).reshape(32, 32)
    norm, rho, v = bc._jacobian_norms(g, z, bc.Settings(power_iters=400))
    assert norm == pytest.approx(float(torch.linalg.matrix_norm(J, 2)), rel=1e-6)
    assert rho == pytest.approx(float(torch.linalg.eigvals(J).abs().max()), rel=2e-2)
    assert g.l2_bound() >= float(torch.linalg.matrix_norm(
        torch.autograd.functional.jacobian(lambda t: torch.nn.functional.conv2d(t, W, padding=1), z)
        .reshape(32, 32), 2)) - 1e-12  # the bound is an upper bound of ||W||_2


def test_controls_are_flagged_and_the_verdict_can_fail():
    """Negative controls: tanh with x = 0 and ρ(W) > 1 has 0 and a positive fixed point; a
    mixed-sign W with a large norm has several. The rule holds only if the controls are
    flagged and pcDEQ is not."""
    W = _nonnegative(12, 3.0)
    zero = bc.run_series(_map(W, torch.zeros(3, 12), positive=False), FAST, "x = 0")
    assert zero.flagged and max(m.max_limits for m in zero.measures) == 2
    M = torch.randn(12, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = torch.randn(3, 12, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    mixed = bc.run_series(_map(M * 3 / torch.linalg.matrix_norm(M, 2), x, positive=False), FAST,
                          "mixed signs")
    assert mixed.flagged
    x_pos = torch.rand(3, 12, generator=torch.Generator().manual_seed(5), dtype=torch.float64) + 0.1
    pc = bc.run_series(_map(W, x_pos), FAST)
    assert not pc.flagged
    assert bc.verdict(bc.Study(FAST, [pc, zero, mixed], ""))[0]
    # a control that nothing flags (a contraction): the test cannot discriminate -> fails
    calm = bc.run_series(_map(_nonnegative(12, 0.5), x_pos, positive=False), FAST, "contraction")
    ok, why = bc.verdict(bc.Study(FAST, [pc, calm], ""))
    assert not ok and "controls not flagged" in why
    # a "pcDEQ" map with several limits fails the rule
    ok, why = bc.verdict(bc.Study(FAST, [bc.Series("fake", "test", "tanh", "", zero.measures), zero], ""))
    assert not ok and "without a unique limit" in why
    assert not bc.verdict(bc.Study(FAST, [pc], ""))[0]  # no control: no verdict for it


def _tampered(src: Path, dst: Path) -> Path:
    """The committed pcDEQ-1-L-Tanh weights with W's direction shifted to mixed signs: the
    same model, outside the theorem (W is no longer nonnegative)."""
    state = torch.load(src, weights_only=True)
    key = next(k for k in state["state_dict"] if k.endswith("deq.weight.v"))
    v = state["state_dict"][key]
    state["state_dict"][key] = v - 0.6 * v.mean(dim=1, keepdim=True) * 2
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, dst)
    return dst


def test_claims_from_models_on_real_weights_can_come_out_either_way(tmp_path):
    """C1 on the committed quick-profile weights (pcDEQ-1-L-Tanh with the DEQ-L-Tanh control)
    holds; the same model with W tampered to mixed signs makes C1 and C7 fail."""
    ds = "mnist5k"
    good = [QUICK / ds / "pcDEQ-1-L-Tanh" / "seed0.pt", QUICK / ds / "DEQ-L-Tanh" / "seed0.pt"]
    src = claims.Source.load("quick", QUICK, [str(p) for p in good])
    ev = claims.model_evidence(src, images_l=4, n_starts=6, scaled=FAST)
    rows = {c.key: c for c in claims.claims_from_models([ev])}
    assert rows["C1"].verdict == claims.HOLDS, rows["C1"].evidence
    assert "scaled W (Figure 15)" in rows["C1"].evidence and "flagged at s" in rows["C1"].evidence
    assert ev.scaled is not None and ev.scaled.controls()
    assert set(ev.inputs) == {f"claims_inputs/{ds}.pt"}  # the images it iterated on
    # written once as data and read back (the claims and Figure 15 notebooks), it gives the
    # same claims, to the last character
    saved = tmp_path / claims.EVIDENCE_FILE
    claims.save_evidence(ev, saved)
    back = claims.load_evidence(src, saved)
    assert json.dumps(evidence_to_json(back)) == json.dumps(evidence_to_json(ev))
    assert [c.evidence for c in claims.claims_from_models([back])] == [c.evidence for c in rows.values()]

    root = tmp_path / "results" / "quick"
    (root / "claims_inputs").mkdir(parents=True)
    (root / "claims_inputs" / f"{ds}.pt").write_bytes((QUICK / "claims_inputs" / f"{ds}.pt").read_bytes())
    bad = _tampered(good[0], root / ds / "pcDEQ-1-L-Tanh" / "seed0.pt")
    ctl = root / ds / "DEQ-L-Tanh" / "seed0.pt"
    ctl.parent.mkdir(parents=True)
    ctl.write_bytes(good[1].read_bytes())
    tampered = claims.Source.load("quick", root, [str(bad), str(ctl)])
    # the saved measurements of the untampered weights are refused for these, naming the
    # changed file (not the unchanged control) and the command that remeasures
    with pytest.raises(claims.EvidenceMissing, match=r"changed: mnist5k/pcDEQ-1-L-Tanh/seed0\.pt\): "
                                                      r"recompute it: `python -m pcdeq evidence"):
        claims.load_evidence(tampered, saved)
    with pytest.raises(claims.EvidenceMissing, match="no model evidence .* for the 2 weight files"):
        claims.load_evidence(tampered)  # none at <root>/model_evidence.json
    ev = claims.model_evidence(tampered, images_l=4, n_starts=6, scaled=FAST)
    rows = {c.key: c for c in claims.claims_from_models([ev])}
    assert rows["C1"].verdict == claims.FAILS, rows["C1"].evidence
    assert rows["C7"].verdict == claims.FAILS and "violated by pcDEQ-1-L-Tanh" in rows["C7"].evidence


def test_evidence_is_refused_for_other_test_images(tmp_path):
    """The measurements iterate on the test images in claims_inputs/: evidence saved beside
    one set of images is refused once they change or go, naming the file, while the same
    weights and images (the control) load."""
    root = tmp_path / "results" / "quick"
    weights = root / "mnist5k" / "pcDEQ-1-L-Tanh" / "seed0.pt"
    weights.parent.mkdir(parents=True)
    weights.write_bytes((QUICK / "mnist5k" / "pcDEQ-1-L-Tanh" / "seed0.pt").read_bytes())
    images = root / "claims_inputs" / "mnist5k.pt"
    images.parent.mkdir()
    images.write_bytes((QUICK / "claims_inputs" / "mnist5k.pt").read_bytes())
    src = claims.Source.load("quick", root)
    from pcdeq.paper_claims.from_models import input_fingerprints, weight_fingerprints
    claims.save_evidence(claims.ModelEvidence(src, weights=weight_fingerprints(src),
                                              inputs=input_fingerprints(src)), root / claims.EVIDENCE_FILE)
    assert claims.load_evidence(src).inputs == {"claims_inputs/mnist5k.pt": input_fingerprints(src)[
        "claims_inputs/mnist5k.pt"]}
    x = torch.load(images, weights_only=True)
    x[0, 0, 0, 0] += 1  # one pixel of one image
    torch.save(x, images)
    with pytest.raises(claims.EvidenceMissing, match=r"other test images .*changed: "
                                                      r"claims_inputs/mnist5k\.pt\): recompute it"):
        claims.load_evidence(src)
    images.unlink()
    with pytest.raises(claims.EvidenceMissing, match=r"claims_inputs/mnist5k\.pt"):
        claims.load_evidence(src)


# ------------------------------------------------ the committed measurements, recomputed
def _differences(old, new, where: str = "") -> list[str]:
    """Where two evidence files (JSON data) differ by more than float64 rounding between CPUs.

    Rounding differs in the last digits (~1e-16 relative); the measurements iterate to relative
    steps of 1e-11 to 1e-12, so a practical margin of 1e-3 relative on every float leaves room
    for that and still catches a changed model or method; values below 1e-9 on both sides
    (distances at rounding level) count as equal, so :func:`_decisions` compares what the
    verdicts test of them; an iteration count may move by one step across the tolerance; counts
    of starts, limits and images, flags and names must be equal.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        if old.keys() != new.keys():
            return [f"{where}: keys {sorted(old.keys() ^ new.keys())}"]
        return [d for k in old for d in _differences(old[k], new[k], f"{where}.{k}")]
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{where}: {len(old)} vs {len(new)} entries"]
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in _differences(a, b, f"{where}[{i}]")]
    if isinstance(old, bool) or isinstance(new, bool) or not isinstance(old, (int, float)) \
            or not isinstance(new, (int, float)):
        return [] if old == new else [f"{where}: {old!r} vs {new!r}"]
    if isinstance(old, int) and isinstance(new, int):
        ok = abs(old - new) <= (1 if where.endswith("iters") else 0)
    elif math.isnan(old) or math.isnan(new) or math.isinf(old) or math.isinf(new):
        ok = (math.isnan(old) and math.isnan(new)) or old == new
    else:
        ok = max(abs(old), abs(new)) < 1e-9 or abs(old - new) <= 1e-3 * max(abs(old), abs(new))
    return [] if ok else [f"{where}: {old!r} vs {new!r}"]


def _decisions(d: dict) -> list[bool]:
    """What the verdicts of C1, C2, C7 and Figure 15 test of a model's measurements, each a
    comparison with its threshold (claims.THRESHOLDS; Banach's bound 1; W >= 0, x > 0)."""
    t = claims.THRESHOLDS
    return ([u["converged"] == u["starts"] and u["max_distance"] <= t["same_fixed_point"]
             for u in d["uniqueness"]]
            + [r["converged"] and r["worst_ratio"] < t["geometric_max_ratio"] for r in d["rates"]]
            + [x for i in d["invariants"] for x in (i["min_w"] >= 0, i["min_x"] > 0, i["min_x"] >= 0,
                                                     i["pairing_ok"], i["concave_ok"])]
            + [x for s in d["scaled"] for m in s["measures"]
               for x in (m["converged"] == m["starts"] * m["images"] and m["max_limits"] == 1,
                         m["l2_bound"] < 1)])


def _of_model(d: dict, method: str) -> dict:
    """The part of an evidence file's data that is about one model (seed 0)."""
    return {"uniqueness": [u for u in d["uniqueness"] if u["method"] == method],
            "rates": [r for r in d["rates"] if r["method"] == method],
            "invariants": [i for i in d["invariants"] if i["method"] == method],
            "scaled": [s for s in d["scaled"]["series"]
                       if s["model"].startswith(f"{method} seed0") and not s["control"]]}


@pytest.mark.parametrize("profile,dataset", [("quick", "mnist5k"), ("fashion", "fashion_mnist")])
def test_committed_evidence_is_what_the_code_measures(profile, dataset):
    """The committed model_evidence.json that the claims and Figure 15 read, remeasured on one
    model (pcDEQ-1-L-ReLU6, the cheapest) with its recorded settings, agrees within the
    tolerance of :func:`_differences` and in every decision of :func:`_decisions`; the same
    comparisons flag small changes of a rate, an iteration count, a number of limits and a
    sign (negative controls)."""
    root = ROOT / "results" / profile
    committed = json.loads((root / claims.EVIDENCE_FILE).read_text())
    method = "pcDEQ-1-L-ReLU6"
    w = root / dataset / method / "seed0.pt"
    ev = claims.model_evidence(claims.Source.load(profile, root, [str(w)]), **committed["settings"])
    old, new = _of_model(committed, method), _of_model(evidence_to_json(ev), method)
    assert old["uniqueness"] and old["rates"] and old["invariants"] and old["scaled"]
    assert _differences(old, new) == [] and _decisions(old) == _decisions(new)
    for key, change in (("rate", lambda x: x * 1.01), ("iters", lambda x: x + 2),
                        ("max_limits", lambda x: x + 1)):
        moved = json.loads(json.dumps(new))
        m = moved["scaled"][0]["measures"][0]  # s = 1: a fitted rate, a count
        m[key] = change(m[key])
        assert len(_differences(old, moved)) == 1, key
    # below the rounding floor a value may move, but not across what a verdict tests
    moved = json.loads(json.dumps(new))
    moved["invariants"][0]["min_x"] = 0.0  # x > 0 broken for a pcDEQ-1 model
    assert new["invariants"][0]["min_x"] > 0 and _decisions(old) != _decisions(moved)


def test_evidence_command_refuses_bad_input_before_any_work(tmp_path, capsys):
    from pcdeq.cli import main
    assert main(["evidence", "--profile", "quick", "--dir", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err
    gone = tmp_path / "mnist5k" / "pcDEQ-1-L-Tanh" / "seed0.pt"
    assert main(["evidence", "--profile", "quick", "--dir", str(tmp_path), "--weights", str(gone)]) == 2
    err = capsys.readouterr().err
    assert f"--weights: no such file: {gone}" in err and "train it first" in err
    assert not (tmp_path / claims.EVIDENCE_FILE).exists()
    # a run still training (`train --out` straight into the layout writes status "running"):
    # the record is named, no traceback, nothing measured
    rec = json.loads((QUICK / "mnist5k" / "pcDEQ-1-L-Tanh" / "seed0.json").read_text())
    running = tmp_path / "mnist5k" / "pcDEQ-1-L-Tanh" / "seed0.json"
    running.parent.mkdir(parents=True)
    running.write_text(json.dumps({**rec, "status": "running"}))
    assert main(["evidence", "--profile", "quick", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {running}") and "Traceback" not in err, err
    assert not (tmp_path / claims.EVIDENCE_FILE).exists()


def test_the_weights_label_names_the_studied_runs_whatever_else_exists(tmp_path):
    """Figure 15's and the model evidence's provenance names the runs whose weights they
    measure (seed 0), so a fresh `all` that measures them before the seed-1 runs finish labels
    them as the committed evidence does; the whole source's label counts every seed."""
    from pcdeq.paper_claims.sources import Source

    rel = Path("mnist5k") / "pcDEQ-1-L-Tanh"
    (tmp_path / rel).mkdir(parents=True)
    for name in ("seed0.json", "seed0.pt"):
        (tmp_path / rel / name).write_bytes((QUICK / rel / name).read_bytes())
    alone = Source.load("quick", tmp_path)
    (tmp_path / rel / "seed1.json").write_bytes((QUICK / rel / "seed1.json").read_bytes())
    both = Source.load("quick", tmp_path)
    assert alone.weights_label() == both.weights_label() and "L: 1 seed x 20 epochs" in both.weights_label()
    assert "L: 2 seeds x 20 epochs" in both.label()  # the control: the source's own label moves
    (tmp_path / rel / "seed0.pt").unlink()
    assert Source.load("quick", tmp_path).weights_label() == ""  # no weights, nothing studied
