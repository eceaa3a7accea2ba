"""The benchmark runner behind ``python -m perf`` and ``tritonvision bench``.

It imports every ``perf/cases/<family>.py`` (a family whose module fails to import,
or whose ``cases()`` raises, is reported and skipped), times ours and every
baseline of each case in this one process on the same rotating input sets,
prints one table, and saves JSON + markdown + a PNG chart of the speed-ups under
``perf/results/<device-slug>/<NAME>.*``. ``--compare NAME`` is the regression
gate: it exits 1 when any case of ours is more than ``--threshold`` slower than
the saved run.

Timing:

* CUDA: ``triton.testing.do_bench`` (median, its own warm-up and L2 flush), over
  a function that cycles through ``n_sets`` input sets; peak memory is the
  ``torch.cuda.max_memory_allocated`` delta of one call above what was allocated
  before it (inputs excluded, outputs and workspace included).
* CPU: ``time.perf_counter`` around each call, one warm-up call per input set,
  then the median of at least ``MIN_REPS`` calls cycling through the sets (until
  ``min_time`` seconds have been spent), ours and the baselines of a case taking
  turns call by call so a shared machine's changing load hits them alike. Peak
  memory is not measured on CPU (reported as ``-``; tracemalloc does not see
  torch's allocations).

Roofline: at the start of a run the device's copy bandwidth (``dst.copy_(src)``,
GB/s = 2 * bytes / time) and matmul rate (fp32, and bf16 on CUDA; TFLOP/s) are
measured; a case's achieved GB/s is ``bytes_moved / time`` and its fraction is
that over the copy bandwidth (likewise TFLOP/s over the matmul rate of its dtype).

Exit status: 0 ok; 1 a regression against ``--compare``; 2 an error (a family that
did not import, a case that raised, an unknown ``--ops`` name, a missing baseline file).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import math
import os
import platform
import re
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from perf.harness import BenchCase

PERF_DIR = Path(__file__).resolve().parent
CASES_DIR = PERF_DIR / "cases"
CASES_PACKAGE = "perf.cases"
RESULTS_DIR = PERF_DIR / "results"
SCHEMA_VERSION = 1
MIN_REPS = 5
"""Fewest timed calls per function on CPU."""
MAX_REPS = 200
"""Most timed calls per function on CPU."""


# ----------------------------------------------------------------------------- discovery
@dataclass
class Failure:
    """Something that went wrong for one family or case; reported, never fatal."""
    family: str
    stage: str  # "import", "cases", or the function name ("ours", "eager", ...)
    case: str
    error: str

    def as_dict(self) -> dict:
        return {"family": self.family, "stage": self.stage, "case": self.case, "error": self.error}


def available_families(cases_dir: Path | None = None) -> list[str]:
    """The family names: the stems of ``perf/cases/*.py`` (private modules excluded)."""
    cases_dir = CASES_DIR if cases_dir is None else cases_dir
    return sorted(p.stem for p in cases_dir.glob("*.py") if not p.stem.startswith("_"))


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def collect_cases(device: torch.device, size: str, families: Iterable[str] | None = None,
                  package: str | None = None, cases_dir: Path | None = None,
                  ) -> tuple[list[BenchCase], list[Failure]]:
    """Import each family's module and call its ``cases(device, size)``.

    ``families`` selects module stems (None: all of them). A module that fails to
    import or whose ``cases`` raises becomes a :class:`Failure`; the others go on.
    ``package`` / ``cases_dir`` default to ``perf.cases`` and its folder.
    """
    package = CASES_PACKAGE if package is None else package
    names = available_families(cases_dir) if families is None else list(families)
    collected: list[BenchCase] = []
    failures: list[Failure] = []
    for family in names:
        try:
            module = importlib.import_module(f"{package}.{family}")
        except Exception as error:  # a broken family must not stop the others
            failures.append(Failure(family, "import", "", _error_text(error)))
            continue
        try:
            found = list(module.cases(device, size))
        except Exception as error:
            failures.append(Failure(family, "cases", "", _error_text(error)))
            continue
        bad = [c for c in found if not all(hasattr(c, a) for a in ("family", "name", "make_inputs", "ours"))]
        if bad:
            failures.append(Failure(family, "cases", "", f"cases() returned a {type(bad[0]).__name__}, "
                                                        f"not a BenchCase"))
        else:
            collected.extend(found)
    return collected, failures


# ----------------------------------------------------------------------------- timing
def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cycling(fn: Callable, input_sets: list[tuple]) -> Callable[[], Any]:
    """A no-argument call of ``fn`` on the next input set, round robin."""
    state = {"k": 0}

    def call():
        inputs = input_sets[state["k"] % len(input_sets)]
        state["k"] += 1
        return fn(*inputs)

    return call


def time_cpu(fn: Callable, input_sets: list[tuple], min_time: float = 0.05,
             min_reps: int = MIN_REPS, max_reps: int = MAX_REPS) -> float:
    """Median wall time in ms of ``fn`` on CPU: one warm-up call per input set, then at
    least ``min_reps`` timed calls cycling through the sets, until ``min_time`` s are spent."""
    for inputs in input_sets:
        fn(*inputs)
    call = _cycling(fn, input_sets)
    times: list[float] = []
    spent = 0.0
    while len(times) < max_reps and (len(times) < min_reps or spent < min_time):
        start = time.perf_counter()
        call()
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        spent += elapsed
    return statistics.median(times) * 1e3


def time_cpu_interleaved(functions: dict[str, Callable], input_sets: list[tuple], min_time: float = 0.05,
                         min_reps: int = MIN_REPS, max_reps: int = MAX_REPS,
                         ) -> dict[str, float | BaseException]:
    """Median wall times in ms of several functions on CPU, timed in turn (one call of each,
    then the next round) so that a machine whose load changes slows all of them alike.

    Each function gets one warm-up call per input set; one that raises there is left out
    and its exception returned in place of a time. Rounds go on until every function has
    ``min_reps`` calls and ``min_time`` seconds of them (at most ``max_reps`` rounds).
    """
    results: dict[str, float | BaseException] = {}
    calls: dict[str, Callable[[], Any]] = {}
    for name, fn in functions.items():
        try:
            for inputs in input_sets:
                fn(*inputs)
            calls[name] = _cycling(fn, input_sets)
        except Exception as error:  # reported by the caller, the others go on
            results[name] = error
    times: dict[str, list[float]] = {name: [] for name in calls}
    rounds = 0
    while calls and rounds < max_reps and (rounds < min_reps or min(map(sum, times.values())) < min_time):
        for name, call in list(calls.items()):
            start = time.perf_counter()
            try:
                call()
            except Exception as error:
                results[name] = error
                del calls[name], times[name]
                continue
            times[name].append(time.perf_counter() - start)
        rounds += 1
    results.update((name, statistics.median(t) * 1e3) for name, t in times.items())
    return {name: results[name] for name in functions}


def time_cuda(fn: Callable, input_sets: list[tuple], device: torch.device,
              warmup_ms: int = 25, rep_ms: int = 100) -> float:
    """Median time in ms of ``fn`` on CUDA with ``triton.testing.do_bench`` (which flushes
    L2 between calls) cycling through the input sets; one warm-up call per set first."""
    import triton.testing

    for inputs in input_sets:
        fn(*inputs)
    _synchronize(device)
    with torch.cuda.device(device):
        return float(triton.testing.do_bench(_cycling(fn, input_sets), warmup=warmup_ms, rep=rep_ms,
                                             return_mode="median"))


def peak_memory_cuda(fn: Callable, inputs: tuple, device: torch.device) -> int:
    """Bytes allocated at the peak of one call of ``fn`` above what was allocated before it."""
    _synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    result = fn(*inputs)
    _synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    del result
    return int(peak)


def time_function(fn: Callable, input_sets: list[tuple], device: torch.device,
                  min_time: float = 0.05) -> tuple[float, int | None]:
    """(median ms, peak bytes or None on CPU) of ``fn`` over the rotating input sets."""
    if device.type == "cuda":
        ms = time_cuda(fn, input_sets, device)
        return ms, peak_memory_cuda(fn, input_sets[0], device)
    return time_cpu(fn, input_sets, min_time=min_time), None


# ----------------------------------------------------------------------------- roofline
def measure_roofline(device: torch.device, quick: bool = False) -> dict:
    """Copy bandwidth (GB/s) and matmul rates (TFLOP/s) measured on ``device`` now."""
    cuda = device.type == "cuda"
    copy_bytes = (1 << 30) if cuda else (64 << 20)
    if quick:
        copy_bytes //= 16
    src = torch.empty(copy_bytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    copy_ms, _ = time_function(lambda s, d: d.copy_(s), [(src, dst)], device, min_time=0.1)
    del src, dst
    result: dict[str, float | None] = {
        "copy_bytes": copy_bytes,
        "copy_gbps": 2 * copy_bytes / (copy_ms * 1e-3) / 1e9,
        "matmul_tflops_fp32": None,
        "matmul_tflops_bf16": None,
    }
    n = (8192 if cuda else 1024) // (4 if quick else 1)
    for key, dtype in (("matmul_tflops_fp32", torch.float32), ("matmul_tflops_bf16", torch.bfloat16)):
        if dtype == torch.bfloat16 and not cuda:
            continue  # CPU bf16 matmul speed says nothing about the ops measured here
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        ms, _ = time_function(torch.matmul, [(a, b)], device, min_time=0.1)
        result[key] = 2 * n ** 3 / (ms * 1e-3) / 1e12
    result["matmul_size"] = n
    return result


# ----------------------------------------------------------------------------- running
def _matmul_rate(roofline: dict, dtype: str) -> float | None:
    if any(low in dtype for low in ("bfloat16", "bf16", "float16", "fp16", "half")):
        return roofline.get("matmul_tflops_bf16") or roofline.get("matmul_tflops_fp32")
    return roofline.get("matmul_tflops_fp32")


def run_case(case: BenchCase, device: torch.device, roofline: dict, n_sets: int = 3,
             min_time: float = 0.05, skip_baselines: Iterable[str] = (),
             ) -> tuple[dict, list[Failure]]:
    """Time ours and each baseline of one case; a function that raises is recorded and skipped."""
    failures: list[Failure] = []
    row: dict[str, Any] = {
        "family": case.family, "name": case.name, "shape": case.shape, "dtype": case.dtype,
        "bytes_moved": case.bytes_moved, "flops": case.flops,
        "ours": None, "baselines": {}, "speedup": {},
        "gbps": None, "gbps_fraction": None, "tflops": None, "tflops_fraction": None,
    }
    try:
        input_sets = [case.make_inputs(k) for k in range(n_sets)]
    except Exception as error:
        failures.append(Failure(case.family, "make_inputs", case.name, _error_text(error)))
        return row, failures
    functions = {"ours": case.ours}
    functions.update((name, fn) for name, fn in case.baselines.items() if name not in set(skip_baselines))
    if device.type == "cpu":  # interleaved: a shared CPU's load changes under the run
        measured = time_cpu_interleaved(functions, input_sets, min_time=min_time)
    for fn_name, fn in functions.items():
        try:
            if device.type == "cpu":
                if isinstance(measured[fn_name], BaseException):
                    raise measured[fn_name]
                ms, peak = measured[fn_name], None
            else:
                ms, peak = time_function(fn, input_sets, device, min_time=min_time)
            entry = {"ms": ms, "peak_bytes": peak}
        except Exception as error:
            failures.append(Failure(case.family, fn_name, case.name, _error_text(error)))
            entry = {"ms": None, "peak_bytes": None, "error": _error_text(error)}
        if fn_name == "ours":
            row["ours"] = entry
        else:
            row["baselines"][fn_name] = entry
    del input_sets
    if device.type == "cuda":
        torch.cuda.empty_cache()
    ours_ms = row["ours"]["ms"]
    if ours_ms:
        for name, entry in row["baselines"].items():
            row["speedup"][name] = entry["ms"] / ours_ms if entry["ms"] else None
        seconds = ours_ms * 1e-3
        if case.bytes_moved:
            row["gbps"] = case.bytes_moved / seconds / 1e9
            row["gbps_fraction"] = row["gbps"] / roofline["copy_gbps"]
        if case.flops:
            row["tflops"] = case.flops / seconds / 1e12
            rate = _matmul_rate(roofline, case.dtype)
            row["tflops_fraction"] = row["tflops"] / rate if rate else None
    return row, failures


def device_description(device: torch.device) -> dict:
    """Name, slug (the results folder) and core counts of ``device``."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        info = {"type": "cuda", "name": name}
    else:
        name = platform.processor() or platform.machine() or "cpu"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        name = f"CPU {name}"
        info = {"type": "cpu", "name": name}
    info["slug"] = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    info["cpu_count"] = os.cpu_count()
    info["torch_threads"] = torch.get_num_threads()
    return info


def _versions() -> dict:
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for module in ("triton", "torchvision", "tritonvision"):
        try:
            versions[module] = importlib.import_module(module).__version__
        except Exception:
            versions[module] = None
    return versions


def run_benchmarks(cases: list[BenchCase], device: torch.device, size: str, *, n_sets: int = 3,
                   min_time: float = 0.05, skip_baselines: Iterable[str] = (),
                   only_baselines: Iterable[str] | None = None, family_budget: float | None = None,
                   roofline: dict | None = None, command: str = "", note: str = "",
                   failures: Iterable[Failure] = (), progress: Callable[[str], None] | None = None,
                   checkpoint: Callable[[dict], None] | None = None) -> dict:
    """Time every case and return the report (what the JSON file holds).

    ``only_baselines`` (when given) keeps just those baselines; ``family_budget`` seconds
    stops starting new cases of a family once its cases have run that long (the rest are
    reported as not timed); ``checkpoint(report)`` is called after every case with the
    report so far, so that a run killed part-way keeps what it measured.
    """
    roofline = roofline if roofline is not None else measure_roofline(device)
    skip = set(skip_baselines)
    if only_baselines is not None:
        keep = set(only_baselines)
        skip |= {name for case in cases for name in case.baselines if name not in keep}
    all_failures = list(failures)
    rows: list[dict] = []
    family_started: dict[str, float] = {}
    for case in cases:
        started = family_started.setdefault(case.family, time.perf_counter())
        if family_budget is not None and time.perf_counter() - started > family_budget:
            all_failures.append(Failure(case.family, "budget", f"{case.name} {case.shape} {case.dtype}",
                                        f"not timed: the family's {family_budget:g} s budget was spent"))
            continue
        if progress:
            progress(f"{case.family}:{case.name} {case.shape} {case.dtype}")
        row, case_failures = run_case(case, device, roofline, n_sets=n_sets, min_time=min_time,
                                      skip_baselines=skip)
        rows.append(row)
        all_failures.extend(case_failures)
        if checkpoint:
            checkpoint(_report(rows, all_failures, device, size, n_sets, min_time, roofline, command, note))
    return _report(rows, all_failures, device, size, n_sets, min_time, roofline, command, note)


def _report(rows: list[dict], failures: list[Failure], device: torch.device, size: str, n_sets: int,
            min_time: float, roofline: dict, command: str, note: str) -> dict:
    if device.type == "cuda":
        method = (f"triton.testing.do_bench median (warm-up 25 ms, rep 100 ms, L2 flushed), "
                  f"{n_sets} rotating input sets")
        memory = "torch.cuda.max_memory_allocated delta of one call (inputs excluded)"
    else:
        method = (f"time.perf_counter median of >= {MIN_REPS} calls and >= {min_time} s per function, "
                  f"ours and the baselines interleaved call by call, after one warm-up call per "
                  f"input set, {n_sets} rotating input sets")
        memory = "not measured on CPU"
    return {
        "schema": SCHEMA_VERSION,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "note": note,
        "size": size,
        "device": device_description(device),
        "versions": _versions(),
        "backend": _backend(device),
        "timing": {"method": method, "n_sets": n_sets, "peak_memory": memory},
        "roofline": roofline,
        "results": list(rows),
        "errors": [f.as_dict() for f in failures],
    }


def _backend(device: torch.device) -> str:
    try:
        from tritonvision.ops._op import backend
        return backend(device)
    except Exception:
        return "unknown"


# ----------------------------------------------------------------------------- reporting
def baseline_names(rows: list[dict]) -> list[str]:
    """Every baseline name in the rows, in order of first appearance."""
    names: list[str] = []
    for row in rows:
        for name in row["baselines"]:
            if name not in names:
                names.append(name)
    return names


def _ms(entry: dict | None) -> str:
    if entry is None:
        return "-"
    if entry.get("ms") is None:
        return "ERR"
    ms = entry["ms"]
    return f"{ms:.4f}" if ms < 1 else f"{ms:.3f}" if ms < 100 else f"{ms:.1f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _rate(value: float | None, fraction: float | None, unit: str) -> str:
    if value is None:
        return "-"
    text = f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return text + (f" ({100 * fraction:.1f}%)" if fraction is not None else "")


def _bytes(value: int | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} B"


def table_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """The header and cells of the one comparison table."""
    rows = report["results"]
    names = baseline_names(rows)
    header = (["family", "case", "shape", "dtype", "ours ms"] + [f"{n} ms" for n in names]
              + [f"vs {n}" for n in names] + ["GB/s (of copy)", "TFLOP/s (of mm)", "peak mem"])
    cells = []
    for row in rows:
        cells.append(
            [row["family"], row["name"], row["shape"], row["dtype"], _ms(row["ours"])]
            + [_ms(row["baselines"].get(n)) for n in names]
            + [_ratio(row["speedup"].get(n)) for n in names]
            + [_rate(row["gbps"], row["gbps_fraction"], "GB/s"),
               _rate(row["tflops"], row["tflops_fraction"], "TF/s"),
               _bytes((row["ours"] or {}).get("peak_bytes"))])
    return header, cells


def format_table(report: dict) -> str:
    """The comparison table as aligned plain text."""
    header, cells = table_rows(report)
    widths = [max(len(str(c)) for c in column) for column in zip(header, *cells)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def describe(report: dict) -> list[str]:
    """The lines that say where and how the numbers were taken."""
    device, versions, roof = report["device"], report["versions"], report["roofline"]
    mm = ", ".join(f"{key.rsplit('_', 1)[1]} {value:.3g} TFLOP/s" for key, value in roof.items()
                   if key.startswith("matmul_tflops") and value is not None)
    lines = [
        f"device: {device['name']} ({device['type']}, {device['cpu_count']} CPU cores visible, "
        f"{device['torch_threads']} torch threads), ops backend: {report.get('backend')}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"date: {report['date']}; size: {report['size']}; command: {report['command']}",
        f"roofline measured now: copy {roof['copy_gbps']:.1f} GB/s; matmul {mm}",
        f"timing: {report['timing']['method']}; peak memory: {report['timing']['peak_memory']}",
    ]
    if report.get("note"):
        lines.insert(0, f"note: {report['note']}")
    return lines


def format_errors(report: dict) -> list[str]:
    """One line per error, and per case left untimed by a spent ``--family-budget``."""
    return [f"{e['family']}{':' + e['case'] if e['case'] else ''} [{e['stage']}] {e['error']}"
            for e in report["errors"]]


def to_markdown(report: dict) -> str:
    header, cells = table_rows(report)
    lines = [f"# Benchmark: {report.get('name', '')} on {report['device']['name']}", ""]
    lines += [f"- {line}" for line in describe(report)]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    lines += ["", "Speed-up `vs X` = X ms / ours ms (above 1: ours is faster). GB/s and TFLOP/s are "
                  "ours, with the fraction of the measured copy bandwidth / matmul rate."]
    errors = format_errors(report)
    if errors:
        lines += ["", "## Errors", ""] + [f"- {e}" for e in errors]
    return "\n".join(lines) + "\n"


def save_chart(report: dict, path: Path) -> None:
    """A horizontal bar chart of ours' speed-up over each baseline, per case (log scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["results"] if r["speedup"]]
    names = baseline_names(rows)
    labels = [f"{r['family']}:{r['name']} {r['shape']} {r['dtype']}" for r in rows]
    height = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.35 * max(len(rows), 1) * max(len(names), 1) ** 0.5))
    try:
        for j, name in enumerate(names):
            values = [r["speedup"].get(name) or math.nan for r in rows]  # NaN: no bar
            positions = [i + (j - (len(names) - 1) / 2) * height for i in range(len(rows))]
            # from the 1x line: right of it ours is faster, left of it slower
            ax.barh(positions, [v - 1 for v in values], left=1.0, height=height, label=f"vs {name}")
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        if rows and any(v for r in rows for v in r["speedup"].values()):
            ax.set_xscale("log")
        ax.set_xlabel("speed-up of ours = baseline ms / ours ms (log scale; right of 1: ours faster)")
        ax.set_title(f"{report.get('name', '')}: {report['device']['name']} ({report['size']})", fontsize=9)
        if names:
            ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def save_report(report: dict, name: str, results_dir: Path = RESULTS_DIR, chart: bool = True) -> list[Path]:
    """Write ``<results_dir>/<device-slug>/<name>.{json,md}`` and, with ``chart``, ``.png``;
    return the paths. Each file is written whole under a temporary name, then renamed."""
    folder = results_dir / report["device"]["slug"]
    folder.mkdir(parents=True, exist_ok=True)
    report = dict(report, name=name)
    paths = [folder / f"{name}.json", folder / f"{name}.md"]
    _write_atomically(paths[0], json.dumps(report, indent=1) + "\n")
    _write_atomically(paths[1], to_markdown(report))
    if chart:
        paths.append(folder / f"{name}.png")
        save_chart(report, paths[2])
    return paths


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def resolve_saved(name: str, device_slug: str, results_dir: Path = RESULTS_DIR) -> Path:
    """A saved run: a path to a .json file, or NAME under this device's results folder."""
    candidate = Path(name)
    if candidate.suffix == ".json" and candidate.is_file():
        return candidate
    return results_dir / device_slug / f"{name}.json"


def _key(row: dict) -> tuple:
    return row["family"], row["name"], row["shape"], row["dtype"]


def compare(report: dict, saved: dict, threshold: float = 0.10) -> tuple[list[str], list[str]]:
    """Regressions (ours more than ``threshold`` slower than in ``saved``) and notes
    (cases present in only one of the runs, or without a time)."""
    old = {_key(r): r for r in saved["results"]}
    regressions, notes = [], []
    for row in report["results"]:
        key = _key(row)
        label = ":".join(key[:2]) + f" {key[2]} {key[3]}"
        before = old.pop(key, None)
        now_ms = (row["ours"] or {}).get("ms")
        then_ms = ((before or {}).get("ours") or {}).get("ms")
        if before is None:
            notes.append(f"{label}: new case, not in the saved run")
        elif now_ms is None or then_ms is None:
            notes.append(f"{label}: no time to compare (now {now_ms}, saved {then_ms})")
        elif now_ms > then_ms * (1 + threshold):
            regressions.append(f"{label}: {now_ms:.4g} ms now vs {then_ms:.4g} ms saved "
                               f"(+{100 * (now_ms / then_ms - 1):.1f}% > {100 * threshold:.0f}%)")
    notes += [f"{':'.join(k[:2])} {k[2]} {k[3]}: in the saved run only" for k in old]
    return regressions, notes


# ----------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ops", default=None,
                        help="comma-separated families (perf/cases/<family>.py) to run; default all")
    parser.add_argument("--size", choices=("tiny", "small", "full"), default=None,
                        help="'tiny' (the GPU window's dry run in the interpreter), 'small' CPU smoke "
                             "sizes or the 'full' GPU sizes (default: full on cuda, small on cpu)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="default: cuda if available, else cpu")
    parser.add_argument("--save", metavar="NAME", default=None,
                        help="save perf/results/<device-slug>/NAME.{json,md,png}")
    parser.add_argument("--compare", metavar="NAME", default=None,
                        help="compare ours with a saved run (NAME or a .json path); exit 1 when "
                             "any case is more than --threshold slower")
    parser.add_argument("--threshold", type=float, default=0.10,
                        help="allowed slow-down for --compare, as a fraction (default 0.10)")
    parser.add_argument("--skip", default="",
                        help="comma-separated baseline names not to time (e.g. 'compile')")
    parser.add_argument("--baselines", default=None,
                        help="comma-separated baseline names to time, the others skipped (default: all)")
    parser.add_argument("--family-budget", type=float, default=None, metavar="SECONDS",
                        help="stop starting new cases of a family after this many seconds (the rest "
                             "are reported as not timed); with --save, results are saved after every case")
    parser.add_argument("--n-sets", type=int, default=3, help="rotating input sets per case (default 3)")
    parser.add_argument("--min-time", type=float, default=0.05,
                        help="CPU: least seconds of timed calls per function (default 0.05)")
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. the machine)")
    # the command line stored with the results when another front (tritonvision bench) runs this one
    parser.add_argument("--command", default=None, help=argparse.SUPPRESS)
    # for tests: another results folder, and a small (cache-resident, so flattering) roofline
    parser.add_argument("--results-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--quick-roofline", action="store_true", help=argparse.SUPPRESS)


def command_from_args(prefix: str, args: argparse.Namespace) -> str:
    """A command line equivalent to ``args`` (when the real argv is not at hand)."""
    parts = prefix.split()
    defaults = vars(_parser(prefix).parse_args([]))
    for key, value in vars(args).items():
        if key in defaults and value != defaults[key] and key not in ("results_dir", "quick_roofline", "command"):
            parts += [f"--{key.replace('_', '-')}", str(value)]
    return shlex.join(parts)


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace, command: str | None = None,
        cases: list[BenchCase] | None = None) -> int:
    """Run the benchmarks the arguments ask for; ``cases`` given bypasses discovery (tests)."""
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    size = args.size or ("full" if device.type == "cuda" else "small")
    results_dir = Path(args.results_dir) if args.results_dir else RESULTS_DIR
    if args.threshold < 0:
        print("error: --threshold must be >= 0", file=sys.stderr)
        return 2
    if args.n_sets < 1:
        print("error: --n-sets must be >= 1", file=sys.stderr)
        return 2
    if args.family_budget is not None and args.family_budget <= 0:
        print("error: --family-budget must be > 0 seconds", file=sys.stderr)
        return 2
    slug = device_description(device)["slug"]
    saved = None
    if args.compare:
        path = resolve_saved(args.compare, slug, results_dir)
        if not path.is_file():
            print(f"error: --compare {args.compare}: no saved run at {path}", file=sys.stderr)
            return 2
        saved = json.loads(path.read_text())
        if saved.get("size") != size:
            print(f"error: --compare {args.compare} holds a '{saved.get('size')}' run, this one is "
                  f"'{size}': pass the same --size", file=sys.stderr)
            return 2
    failures: list[Failure] = []
    if cases is None:
        families = None
        if args.ops:
            families = [f.strip() for f in args.ops.split(",") if f.strip()]
            unknown = sorted(set(families) - set(available_families()))
            if unknown:
                print(f"error: --ops: unknown families {unknown}; available: {available_families()}",
                      file=sys.stderr)
                return 2
        cases, failures = collect_cases(device, size, families)
    skip = [s.strip() for s in args.skip.split(",") if s.strip()]
    print(f"measuring the roofline on {device} ...", file=sys.stderr, flush=True)
    roofline = measure_roofline(device, quick=args.quick_roofline)
    only = [s.strip() for s in args.baselines.split(",") if s.strip()] if args.baselines is not None else None
    checkpoint = (lambda partial: save_report(partial, args.save, results_dir, chart=False)) if args.save else None
    report = run_benchmarks(
        cases, device, size, roofline=roofline, n_sets=args.n_sets, min_time=args.min_time,
        skip_baselines=skip, only_baselines=only, family_budget=args.family_budget,
        note=args.note, failures=failures, checkpoint=checkpoint,
        command=command if command is not None else command_from_args("python -m perf", args),
        progress=lambda text: print(f"  timing {text}", file=sys.stderr, flush=True))
    print("\n".join(describe(report)))
    print()
    print(format_table(report))
    errors = format_errors(report)
    if errors:
        print("\nerrors (skipped):")
        print("\n".join(f"  {e}" for e in errors))
    if args.save:
        paths = save_report(report, args.save, results_dir)
        print("\nsaved " + ", ".join(str(p) for p in paths))
    status = 2 if any(e["stage"] != "budget" for e in report["errors"]) else 0
    if saved is not None:
        regressions, notes = compare(report, saved, args.threshold)
        matched = {_key(r) for r in report["results"]} & {_key(r) for r in saved["results"]}
        if not matched:
            print(f"error: --compare {args.compare}: no case of this run is in the saved run, "
                  f"nothing was compared", file=sys.stderr)
            return 2
        for note in notes:
            print(f"compare: {note}")
        if regressions:
            print(f"\nREGRESSION against {args.compare} (threshold {100 * args.threshold:.0f}%):")
            print("\n".join(f"  {r}" for r in regressions))
            return 1
        print(f"\ncompare: no case is more than {100 * args.threshold:.0f}% slower than {args.compare}")
    return status


def main(argv: list[str] | None = None, prog: str = "python -m perf") -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser(prog).parse_args(argv)
    return run(args, command=args.command or shlex.join(prog.split() + argv))
