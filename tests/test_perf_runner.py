"""The benchmark runner (perf/runner.py, ``tritonvision bench``) on CPU with tiny fake cases,
its regression gate, and one pass over the real box_iou cases."""
from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # perf/ is a source-tree package, not installed
    sys.path.insert(0, str(ROOT))

from perf import runner  # noqa: E402
from perf.harness import BenchCase  # noqa: E402

CPU = torch.device("cpu")
OURS_S, SLOW_S = 0.002, 0.006


def _sleeper(seconds: float):
    def fn(x):
        time.sleep(seconds)
        return x + 1
    return fn


def _fail(x):
    raise RuntimeError("baseline exploded")


def fake_cases() -> list[BenchCase]:
    """Ours sleeps 2 ms, the 'slow' baseline 6 ms: a known 3x speed-up."""
    return [
        BenchCase(family="fake", name="sleepy", shape="N=16", dtype="float32",
                  make_inputs=lambda k: (torch.full((16,), float(k)),),
                  ours=_sleeper(OURS_S), baselines={"slow": _sleeper(SLOW_S), "same": _sleeper(OURS_S)},
                  bytes_moved=10_000_000, flops=4_000_000_000),
        BenchCase(family="fake", name="broken", shape="N=4", dtype="float16",
                  make_inputs=lambda k: (torch.zeros(4),), ours=_sleeper(OURS_S),
                  baselines={"slow": _fail}),
    ]


def parse(*argv: str, results_dir: Path):
    import argparse

    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    return parser.parse_args(["--device", "cpu", "--min-time", "0", "--n-sets", "2", "--quick-roofline",
                              "--results-dir", str(results_dir), *argv])


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """One run of the fake cases with --save, shared by the tests below."""
    results = tmp_path_factory.mktemp("results")
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = runner.run(parse("--save", "base", "--note", "test run", results_dir=results),
                            command="python -m perf --save base", cases=fake_cases())
    return status, out.getvalue(), results


def test_table_json_markdown_png(saved_run):
    status, printed, results = saved_run
    assert status == 2, "a baseline that raises is an error (exit 2) ..."
    header = next(line for line in printed.splitlines() if line.startswith("family"))
    for column in ("case", "shape", "dtype", "ours ms", "slow ms", "same ms", "vs slow", "vs same",
                   "GB/s (of copy)", "TFLOP/s (of mm)", "peak mem"):
        assert column in header
    sleepy = next(line for line in printed.splitlines() if "sleepy" in line)
    broken = next(line for line in printed.splitlines() if line.startswith("fake") and "broken" in line)
    assert "ERR" in broken and "ERR" not in sleepy
    assert "baseline exploded" in printed  # ... reported, and the other case still ran

    (folder,) = [p for p in results.iterdir() if p.is_dir()]
    assert folder.name == runner.device_description(CPU)["slug"]
    assert folder.name.startswith("cpu")
    report = json.loads((folder / "base.json").read_text())
    assert report["name"] == "base" and report["note"] == "test run"
    assert report["command"] == "python -m perf --save base"
    assert report["device"]["type"] == "cpu" and report["device"]["cpu_count"] >= 1
    assert report["versions"]["torch"] == torch.__version__ and "triton" in report["versions"]
    assert report["date"].startswith(time.strftime("%Y-", time.gmtime()))
    assert report["timing"]["peak_memory"] == "not measured on CPU"
    assert report["roofline"]["copy_gbps"] > 0 and report["roofline"]["matmul_tflops_fp32"] > 0

    row = next(r for r in report["results"] if r["name"] == "sleepy")
    ours = row["ours"]["ms"]
    assert OURS_S * 1e3 * 0.9 < ours < 50  # sleep(2 ms) takes at least ~2 ms, more on a busy machine
    assert 1.5 < row["speedup"]["slow"] < 4.0
    assert 0.5 < row["speedup"]["same"] < 2.0
    assert row["gbps"] == pytest.approx(10e6 / (ours / 1e3) / 1e9)
    assert row["gbps_fraction"] == pytest.approx(row["gbps"] / report["roofline"]["copy_gbps"])
    assert row["tflops"] == pytest.approx(4e9 / (ours / 1e3) / 1e12)
    assert row["ours"]["peak_bytes"] is None
    broken_row = next(r for r in report["results"] if r["name"] == "broken")
    assert broken_row["baselines"]["slow"]["ms"] is None
    assert [e["stage"] for e in report["errors"]] == ["slow"]

    markdown = (folder / "base.md").read_text()
    assert "| family | case | shape | dtype | ours ms |" in markdown
    assert "| fake | sleepy | N=16 | float32 |" in markdown
    assert "test run" in markdown and "baseline exploded" in markdown

    png = (folder / "base.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(folder / "base.png") as image:
        image.verify()
    with Image.open(folder / "base.png") as image:
        assert image.size[0] > 100 and image.size[1] > 50


def test_compare_gate(saved_run, tmp_path, capsys):
    _, _, results = saved_run
    cases = [fake_cases()[0]]
    # against itself (a fresh run of the same sleeps; the threshold allows for a busy machine): passes
    assert runner.run(parse("--compare", "base", "--threshold", "1.0", results_dir=results), cases=cases) == 0
    assert "no case is more than 100% slower" in capsys.readouterr().out
    # against a doctored baseline in which ours was 2x faster: the gate fails and names the case
    (path,) = results.glob("*/base.json")
    doctored = json.loads(path.read_text())
    for row in doctored["results"]:
        row["ours"]["ms"] /= 2
    doctored_path = tmp_path / "doctored.json"
    doctored_path.write_text(json.dumps(doctored))
    assert runner.run(parse("--compare", str(doctored_path), results_dir=results), cases=cases) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "fake:sleepy N=16 float32" in out
    # a baseline that does not exist, of another size, or sharing no case: an error, not a pass
    assert runner.run(parse("--compare", "nope", results_dir=results), cases=cases) == 2
    doctored_path.write_text(json.dumps(dict(doctored, size="full")))
    assert runner.run(parse("--compare", str(doctored_path), results_dir=results), cases=cases) == 2
    for row in doctored["results"]:
        row["name"] += "_renamed"
    doctored_path.write_text(json.dumps(doctored))
    assert runner.run(parse("--compare", str(doctored_path), results_dir=results), cases=cases) == 2
    assert "nothing was compared" in capsys.readouterr().err


def _report(*ms: float | None) -> dict:
    return {"results": [{"family": "f", "name": f"c{i}", "shape": "s", "dtype": "float32",
                         "ours": {"ms": m}} for i, m in enumerate(ms)]}


def test_compare_rules():
    saved = _report(1.0, 1.0, 1.0)
    assert runner.compare(saved, saved, 0.10) == ([], [])
    regressions, notes = runner.compare(_report(1.05, 1.2, 0.5), saved, 0.10)
    assert len(regressions) == 1 and regressions[0].startswith("f:c1 s float32")
    assert notes == []
    assert runner.compare(_report(1.05, 1.2, 0.5), saved, 0.25) == ([], [])
    regressions, notes = runner.compare(_report(1.0, None), saved, 0.10)
    assert regressions == [] and len(notes) == 2  # c1 has no time now, c2 only in the saved run


def test_collect_cases_skips_broken_families(tmp_path, monkeypatch):
    package = tmp_path / "fake_perf_cases"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "good.py").write_text(textwrap.dedent("""
        import torch
        from perf.harness import BenchCase

        def cases(device, size):
            n = 8 if size == "small" else 1024
            return [BenchCase("good", "add", f"N={n}", "float32",
                              lambda k: (torch.ones(n, device=device),), lambda x: x + 1,
                              {"eager": lambda x: x + 1})]
    """))
    (package / "broken.py").write_text("import a_module_that_does_not_exist\n")
    (package / "raising.py").write_text("def cases(device, size):\n    raise ValueError('no cases')\n")
    (package / "_private.py").write_text("raise SystemExit('never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(runner, "CASES_PACKAGE", "fake_perf_cases")
    monkeypatch.setattr(runner, "CASES_DIR", package)
    assert runner.available_families() == ["broken", "good", "raising"]

    cases, failures = runner.collect_cases(CPU, "small")
    assert [(c.family, c.shape) for c in cases] == [("good", "N=8")]
    assert {(f.family, f.stage) for f in failures} == {("broken", "import"), ("raising", "cases")}
    assert "a_module_that_does_not_exist" in next(f.error for f in failures if f.family == "broken")

    # the whole run goes on past the broken families, and exits 2 to say so
    results = tmp_path / "results"
    assert runner.run(parse(results_dir=results)) == 2
    assert runner.run(parse("--ops", "good", results_dir=results)) == 0
    assert runner.run(parse("--ops", "good,missing", results_dir=results)) == 2


def test_box_iou_cases_run_once():
    """The real perf/cases/box_iou.py at small size: every function runs and agrees with
    torchvision (compile baselines excluded here: ~10 s of compiling each on CPU)."""
    import torchvision

    from perf.cases import box_iou
    from tritonvision.ops import unpack_bitmask

    cases = box_iou.cases(CPU, "small")
    assert {c.name for c in cases} == {"box_iou", "generalized_box_iou", "distance_box_iou",
                                       "complete_box_iou", "box_iou_threshold"}
    n = box_iou.SIZES["small"]
    for case in cases:
        assert set(case.baselines) == {"torchvision", "eager", "compile"}
        a, b = case.make_inputs(0)
        assert a.shape == b.shape == (n, 4) and a.dtype == torch.float32
        assert not torch.equal(case.make_inputs(1)[0], a)  # rotating sets differ
        expected = case.baselines["torchvision"](a, b)
        eager = case.baselines["eager"](a, b)
        ours = case.ours(a, b)
        if case.name == "box_iou_threshold":
            assert case.bytes_moved == n * (n // 32) * 4 + 16 * 2 * n
            assert expected.dtype == torch.bool and torch.equal(eager, expected)
            iou = torchvision.ops.box_iou(a, b)
            near = (iou - box_iou.THRESHOLD).abs() < 1e-6
            unpacked = unpack_bitmask(ours, n)
            assert torch.equal(unpacked[~near], expected[~near])
            assert expected.any() and not expected.all()
        else:
            assert case.bytes_moved == n * n * 4 + 16 * 2 * n
            torch.testing.assert_close(eager, expected, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)


def test_bench_command(tmp_path, capsys, monkeypatch):
    from tritonvision import cli
    from tritonvision.commands import bench

    assert cli.COMMANDS["bench"] == "tritonvision.commands.bench"
    status = cli.main(["bench", "--ops", "box_iou", "--device", "cpu", "--skip", "compile,eager",
                       "--min-time", "0", "--n-sets", "1", "--save", "smoke",
                       "--quick-roofline", "--results-dir", str(tmp_path)])
    assert status == 0
    (saved,) = tmp_path.glob("*/smoke.json")
    report = json.loads(saved.read_text())
    assert report["command"].startswith("tritonvision bench")
    assert "--ops box_iou" in report["command"] and "--save smoke" in report["command"]
    assert len(report["results"]) == 5 and report["errors"] == []

    # installed without the source tree: a clear error, not a traceback
    monkeypatch.setattr(bench, "_perf_root", lambda: None)
    assert cli.main(["bench", "--size", "small", "--device", "cpu"]) == 2
    assert "not installed with the package" in capsys.readouterr().err


@pytest.mark.gpu
def test_runner_on_cuda(tmp_path):
    """do_bench timing, the max_memory_allocated peak and the bf16 roofline on a GPU."""
    cuda = torch.device("cuda")
    n = 1 << 22
    case = BenchCase(family="fake", name="double", shape=f"N={n}", dtype="float32",
                     make_inputs=lambda k: (torch.full((n,), float(k), device=cuda),),
                     ours=lambda x: x * 2, baselines={"two_ops": lambda x: (x + x) * 1.0},
                     bytes_moved=8 * n)
    args = parse("--save", "gpu", "--size", "small", results_dir=tmp_path)
    args.device = "cuda"
    assert runner.run(args, cases=[case]) == 0
    (saved,) = tmp_path.glob("*/gpu.json")
    report = json.loads(saved.read_text())
    assert report["device"]["type"] == "cuda" and report["size"] == "small"
    assert report["roofline"]["matmul_tflops_bf16"] > report["roofline"]["matmul_tflops_fp32"] > 0
    row = report["results"][0]
    assert row["ours"]["ms"] > 0
    assert row["ours"]["peak_bytes"] >= 4 * n  # the output at least
    assert row["baselines"]["two_ops"]["peak_bytes"] >= 8 * n  # x + x, then * 1.0
    assert 0 < row["gbps_fraction"] < 1.5

    from perf.cases import box_iou

    for bench_case in box_iou.cases(cuda, "small"):
        a, b = bench_case.make_inputs(0)
        assert a.is_cuda
        ours, expected = bench_case.ours(a, b), bench_case.baselines["torchvision"](a, b)
        if bench_case.name != "box_iou_threshold":
            torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_family_budget_only_baselines_and_saving_after_every_case(tmp_path, capsys):
    """A spent family budget leaves the rest of the family untimed (reported); --baselines keeps
    only the named baselines; --save has the JSON on disk after each case, before the run ends."""
    seen_on_disk: list[int] = []
    results = tmp_path / "results"

    def slow_ours(x):
        files = list(results.glob("*/partial.json"))
        seen_on_disk.append(len(json.loads(files[0].read_text())["results"]) if files else 0)
        time.sleep(0.02)
        return x

    cases = [BenchCase(family="fam", name=f"case{i}", shape="N=1", dtype="float32",
                       make_inputs=lambda k: (torch.zeros(1),), ours=slow_ours,
                       baselines={"slow": _sleeper(0.001), "other": _sleeper(0.001)})
             for i in range(6)]
    status = runner.run(parse("--save", "partial", "--family-budget", "0.3", "--baselines", "slow",
                              results_dir=results), command="python -m perf", cases=cases)
    report = json.loads(next(results.glob("*/partial.json")).read_text())
    timed = [row["name"] for row in report["results"]]
    assert timed and timed == [f"case{i}" for i in range(len(timed))] and len(timed) < 6
    assert {e["stage"] for e in report["errors"]} == {"budget"}
    assert status == 0, "cases left untimed by the budget are reported, not errors"
    assert all(set(row["baselines"]) == {"slow"} for row in report["results"])
    assert max(seen_on_disk) >= 1, "the report must be saved after each case, not only at the end"
    capsys.readouterr()
