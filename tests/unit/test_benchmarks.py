"""The benchmark harness (benchmarks/) imports, parses its size argument and writes well-formed
records; the plain baseline CNN has the reference architecture. Nothing is timed or run here."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = ["bench_startup", "bench_run", "bench_eval", "bench_step", "bench_loader", "bench_seg", "bench_growth",
           "gpu"]


@pytest.fixture(scope="module")
def bench(request):
    sys.path.insert(0, str(BENCH))
    request.addfinalizer(lambda: sys.path.remove(str(BENCH)))
    return {name: importlib.import_module(name) for name in ["common", "run_all", *SCRIPTS]}


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_has_a_main_and_the_shared_size_argument(bench, name):
    assert callable(bench[name].main)
    args = bench["common"].parser("x").parse_args(["--scale", "full", "--reps", "2", "--no-record"])
    assert (args.scale, args.reps, args.no_record) == ("full", 2, True)
    assert bench["common"].reps(args, 1, 5) == 2


def test_run_all_knows_every_script(bench):
    assert sorted(f[:-3] for f in bench["run_all"].SCRIPTS.values()) == sorted(s for s in SCRIPTS if s != "gpu")
    assert all((BENCH / f).is_file() for f in bench["run_all"].SCRIPTS.values())


def test_record_fields_ratio_and_targets(bench, tmp_path):
    C = bench["common"]
    rec = C.make_record("x", 3.0, 2.0, "s", 4, "small", ("ratio_max", 2.0), note="n")
    for key in ("benchmark", "cvexp", "baseline", "unit", "ratio", "target", "meets_target", "repetitions",
                "scale", "machine", "date"):
        assert key in rec
    assert rec["ratio"] == 1.5 and rec["meets_target"] is True and rec["note"] == "n"
    assert set(rec["machine"]) >= {"cpu_count", "torch", "platform", "gpu"}
    assert C.make_record("x", 4.0, 1.0, "s", 1, "small", ("difference_max", 1.5))["meets_target"] is False
    assert C.make_record("x", 900.0, 400.0, "images/s", 1, "small", ("ratio_min", 2.0))["meets_target"] is True
    assert C.make_record("x", 4.0, None, "s", 1, "small", ("absolute_max", 5.0))["meets_target"] is True
    assert C.make_record("x", 4.0, 2.0, "s", 1, "small", None)["target"] is None

    class Args:
        no_record = False
        results = tmp_path / "r.jsonl"

    C.emit(rec, Args)
    C.emit(rec, Args)
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["benchmark"] == "x"
    assert "| x |" in bench["run_all"].table([json.loads(lines[0])], markdown=True)


def test_interleave_alternates_which_side_goes_first(bench):
    order = []
    bench["common"].interleave(3, {"a": lambda k: order.append("a") or 1.0, "b": lambda k: order.append("b") or 2.0})
    assert order == ["a", "b", "b", "a", "a", "b"]


def test_growth_trend_check(bench):
    g = bench["bench_growth"]
    assert g.non_increasing([1.5, 1.2, 1.2], 0.0)
    assert g.non_increasing([1.5, 1.52], 0.03)
    assert not g.non_increasing([1.2, 1.5], 0.03)


def test_plain_reference_cnn_matches_cvexp_convnet_shapes(bench):
    import torch

    sys.path.insert(0, str(BENCH))
    try:
        plain_torch = importlib.import_module("plain_torch")
    finally:
        sys.path.remove(str(BENCH))
    from cvexp.models.convnet import ConvNet

    ours = ConvNet(num_classes=10, input_size=64)
    plain = plain_torch.ReferenceCNN(10, 64)
    plain_torch.load_weights_in_order(plain, {f"net.{k}": v for k, v in ours.state_dict().items()})
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(plain(x), ours(x))
