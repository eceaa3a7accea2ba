"""Static sm_90 resources of every Triton kernel at every configuration the ops launch on a GPU.

``python -m perf.resources`` (from the repository root, no GPU needed):

1. **record** -- runs every call of ``perf/kernel_calls.py`` on CPU tensors through the ops'
   *GPU* launch code (their Triton implementations, registered for CPU in this process only,
   without kernel-test mode), and records each launch as Triton would compile it for an
   sm_90 GPU: argument types, constexprs, the specialisation of its arguments (16-byte
   alignment, integers equal to 1), num_warps, num_stages. The kernel then runs in Triton's
   interpreter, so host code that reads a kernel's output (NMS counts, label checks) sees
   real values and every later launch of the op is reached too;
2. **compile** -- each distinct launch with ``triton.compile`` for ``GPUTarget("cuda", 90, 32)``
   and Triton's bundled ptxas, in parallel; registers, spills and stack come from
   ``ptxas -v`` over the kernel's PTX with the flags Triton passes (see ``ptxas_flags``),
   shared memory from the compiled kernel's metadata;
3. **report** -- theoretical resident warps per SM (see :func:`occupancy`) and
   ``perf/results/sm90-static/resources.json`` + ``resources.md``.

The concessions to the missing GPU: the ops' shared launch helpers give an H100/H200's 132
SMs when a launcher sizes its grid by the SM count (``tritonvision/ops/_launch.py``), and
the 64-bit-offset variants (tensors of 2**31+ elements, which cannot be allocated here) are
recorded by re-running a few calls with ``needs_int64`` forced (``INT64_CALLS``). ``--out DIR`` writes elsewhere (the tests use a temporary directory);
``--only TEXT`` keeps the calls whose name contains TEXT.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "perf" / "results" / "sm90-static"
CAPABILITY = 90

# sm_90 limits (CUDA occupancy calculator, compute capability 9.0)
REGISTERS_PER_SM = 65536
REGISTER_ALLOCATION_UNIT = 256       # registers, allocated per warp
MAX_REGISTERS_PER_THREAD = 255
SHARED_PER_SM = 228 * 1024
SHARED_RESERVED_PER_BLOCK = 1024     # the CUDA runtime's own shared memory per resident block
SHARED_ALLOCATION_UNIT = 128
MAX_WARPS_PER_SM = 64
MAX_BLOCKS_PER_SM = 32

MIN_WARPS_MEMORY_BOUND = 16
"""Resident warps per SM that the memory-bound kernels must allow (latency hiding)."""
MEMORY_BOUND = frozenset({
    "pairwise_box_overlap_kernel", "aligned_box_overlap_kernel", "box_iou_threshold_kernel",
    "dice_ce_stats_kernel", "dice_ce_stats_backward_kernel", "sigmoid_stats_kernel",
    "sigmoid_stats_backward_kernel", "confusion_matrix_kernel", "upsample_bilinear_add_kernel",
    "upsample_bilinear_backward_kernel", "add_act_kernel",
})
"""Kernels bound by memory traffic: they need many resident warps rather than big tiles."""


# ----------------------------------------------------------------------------- record
def _encode(value: Any) -> Any:
    """A constexpr as JSON: numbers, bools and strings as they are, Triton dtypes as {"dtype": name}."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return {"dtype": value.name}


def _decode(value: Any) -> Any:
    import triton.language as tl
    return tl.dtype(value["dtype"]) if isinstance(value, dict) else value


def _launch_key(launch: dict) -> str:
    """What makes two launches compile alike: everything but the calls that made them."""
    return json.dumps({k: v for k, v in launch.items() if k != "calls"}, sort_keys=True)


def record(call_names: list[str]) -> list[dict]:
    """Run the named kernel calls on CPU tensors through the ops' GPU launchers; their distinct
    launches as JSON-able dicts (kernel, signature, constexprs, attrs, launch options, calls).
    A name prefixed ``int64:`` runs its call with 64-bit offsets forced (see INT64_CALLS).

    Patches Triton and the op registrations for good (the interpreter leaves triton.language
    patched): run it in a process of its own (:func:`record_in_processes`).
    """
    import torch
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import make_backend
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction, create_function_from_signature

    import tritonvision.ops  # noqa: F401  (registers every op)
    from perf.kernel_calls import CALLS
    from tritonvision.ops._op import KERNEL_TEST_MODE, REGISTERED
    if KERNEL_TEST_MODE:
        raise RuntimeError("perf.resources records the GPU launch code: unset TRITON_INTERPRET")

    torch.set_num_threads(1)  # one recording process per core
    backend = make_backend(GPUTarget("cuda", CAPABILITY, 32))
    binders, interpreted, launches = {}, {}, {}
    current = [""]

    def interpreter_of(jit: JITFunction) -> InterpretedFunction:
        if jit.fn not in interpreted:
            interpreted[jit.fn] = InterpretedFunction(jit.fn)
        return interpreted[jit.fn]

    def recording_run(self: JITFunction, *args, grid, warmup, **kwargs):
        if self not in binders:
            binders[self] = create_function_from_signature(self.signature, self.params, backend)
        bound, specialization, options = binders[self](*args, **kwargs)
        _, signature, constexprs, attrs = self._pack_args(backend, dict(kwargs), bound, specialization, options)
        params = {p.name for p in self.params}
        launch = dict(module=self.fn.__module__, kernel=self.fn.__name__, signature=signature,
                      constexprs=[[list(path), _encode(v)] for path, v in constexprs.items()],
                      attrs=[[list(path), v] for path, v in attrs.items()],
                      options={k: v for k, v in kwargs.items() if k not in params}, calls=[current[0]])
        known = launches.setdefault(_launch_key(launch), launch)
        if current[0] not in known["calls"]:
            known["calls"].append(current[0])
        return interpreter_of(self).run(*args, grid=grid, warmup=warmup, **kwargs)

    JITFunction.run = recording_run
    JITFunction.__call__ = lambda self, *args, **kwargs: interpreter_of(self)(*args, **kwargs)
    for fused in REGISTERED.values():
        fused.op.register_kernel("cpu", fused.triton_impl)
    by_name = {call.name: call for call in CALLS}
    for name in call_names:
        current[0] = name
        with _int64_offsets(name.startswith(INT64_PREFIX)):
            by_name[name.removeprefix(INT64_PREFIX)].run(torch.device("cpu"))
    return list(launches.values())


INT64_PREFIX = "int64:"
INT64_CALLS = ("deconv/k2s2/cin37/cout45/", "deconv/k3s2/cin70/cout21/fp32", "box_overlap/ciou/pairwise/fp",
               "box_overlap/iou/pairwise/fp32", "upsample_bilinear_add/x2/C=3/5x7/fp")
"""Calls recorded a second time as if their tensors spanned 2**31 elements (``needs_int64`` forced
true in the ops): the recorder cannot allocate such tensors, but their launches are real too."""


@contextlib.contextmanager
def _int64_offsets(forced: bool):
    """Every op module's ``needs_int64`` answers True while ``forced``."""
    modules = [m for name, m in sys.modules.items() if name.startswith("tritonvision.ops.") and
               hasattr(m, "needs_int64")] if forced else []
    saved = [m.needs_int64 for m in modules]
    for module in modules:
        module.needs_int64 = lambda *tensors: True
    try:
        yield
    finally:
        for module, original in zip(modules, saved):
            module.needs_int64 = original


def record_in_processes(call_names: list[str], jobs: int) -> list[dict]:
    """:func:`record` over ``jobs`` fresh (spawned) processes, the calls dealt round-robin;
    the distinct launches, first occurrence first."""
    shares = [call_names[i::jobs] for i in range(jobs) if call_names[i::jobs]]
    with concurrent.futures.ProcessPoolExecutor(len(shares), mp_context=multiprocessing.get_context("spawn")) as pool:
        found = [launch for share in pool.map(record, shares) for launch in share]
    distinct = {}
    for launch in found:
        known = distinct.setdefault(_launch_key(launch), launch)
        if known is not launch:
            known["calls"] += launch["calls"]
    return list(distinct.values())


# ----------------------------------------------------------------------------- compile
def ptxas_flags(enable_fp_fusion: bool) -> list[str]:
    """The ptxas options Triton's CUDA backend compiles with (``make_cubin``, triton 3.x)."""
    fmad = [] if enable_fp_fusion else ["--fmad=false"]
    return ["-lineinfo", *fmad, "-v", "--regAllocOptLevel=2", f"--gpu-name=sm_{CAPABILITY}a"]


PTXAS_LINE = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
REGISTERS_LINE = re.compile(r"Used (\d+) registers")


def ptxas_path() -> str:
    """Triton's bundled ptxas (the API to find it changed across triton 3.x)."""
    import triton.backends.nvidia as nvidia
    from triton.backends.nvidia import compiler
    for ask in (lambda: compiler.get_ptxas(CAPABILITY), lambda: compiler.get_ptxas()):
        try:
            return ask().path
        except (AttributeError, TypeError):
            continue
    return str(Path(nvidia.__file__).parent / "bin" / "ptxas")


def ptxas_resources(ptx: str, enable_fp_fusion: bool) -> dict[str, int]:
    """registers, spill_stores, spill_loads, stack (bytes per thread) of one kernel's PTX."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp, "kernel.ptx")
        source.write_text(ptx)
        result = subprocess.run([ptxas_path(), *ptxas_flags(enable_fp_fusion), str(source),
                                 "-o", str(Path(tmp, "kernel.cubin"))], capture_output=True, text=True, check=True)
    log = result.stdout + result.stderr
    stack, stores, loads = map(int, PTXAS_LINE.search(log).groups())
    return dict(registers=int(REGISTERS_LINE.search(log).group(1)), spill_stores=stores, spill_loads=loads,
                stack=stack)


def occupancy(registers: int, shared_bytes: int, num_warps: int) -> dict[str, Any]:
    """Theoretical resident blocks and warps per SM on sm_90, and the limiting resource.

    Registers are allocated per warp in units of 256 (``ceil(32 * regs / 256) * 256``) from
    64K per SM; shared memory in units of 128 bytes plus the runtime's 1 KB per block, from
    228 KB per SM; at most 64 warps and 32 blocks per SM.
    """
    per_warp = -(-32 * max(registers, 1) // REGISTER_ALLOCATION_UNIT) * REGISTER_ALLOCATION_UNIT
    limits = {
        "warps": MAX_WARPS_PER_SM // num_warps,
        "blocks": MAX_BLOCKS_PER_SM,
        "registers": (REGISTERS_PER_SM // per_warp) // num_warps,
        "shared": SHARED_PER_SM // (-(-shared_bytes // SHARED_ALLOCATION_UNIT) * SHARED_ALLOCATION_UNIT
                                    + SHARED_RESERVED_PER_BLOCK),
    }
    blocks = min(limits.values())
    limiter = min(limits, key=lambda name: (limits[name], name != "warps"))
    return dict(blocks_per_sm=blocks, warps_per_sm=blocks * num_warps, limited_by=limiter)


def _kernel(launch: dict):
    import importlib
    return getattr(importlib.import_module(launch["module"]), launch["kernel"])


def _row_fields(launch: dict) -> dict[str, Any]:
    """What identifies a launch in the report: kernel, dtype, constexprs, specialisation, options."""
    params = _kernel(launch).params
    constexprs, specialized = {}, []
    for (index,), value in launch["constexprs"]:
        if params[index].is_constexpr:
            constexprs[params[index].name] = value["dtype"] if isinstance(value, dict) else value
        else:
            specialized.append(params[index].name)
    pointers = [ty for ty in launch["signature"].values() if ty.startswith("*")]
    floats = [ty for ty in pointers if ty[1:].startswith(("fp", "bf"))]
    options = launch["options"]
    return dict(kernel=launch["kernel"], module=launch["module"], dtype=(floats or pointers or ["-"])[0].lstrip("*"),
                constexprs=constexprs, specialized_to_1=sorted(specialized),
                num_warps=options.get("num_warps", 4), num_stages=options.get("num_stages", 3), calls=launch["calls"])


def compile_launch(launch: dict) -> dict[str, Any]:
    """Compile one recorded launch for sm_90; its report row (``error`` set when it does not compile)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    row = _row_fields(launch)
    constexprs = {tuple(path): _decode(value) for path, value in launch["constexprs"]}
    attrs = {tuple(path): value for path, value in launch["attrs"]}
    start = time.perf_counter()
    try:
        compiled = triton.compile(ASTSource(_kernel(launch), launch["signature"], constexprs, attrs),
                                  target=GPUTarget("cuda", CAPABILITY, 32), options=launch["options"])
        row["compile_s"] = round(time.perf_counter() - start, 2)
        row.update(ptxas_resources(compiled.asm["ptx"], launch["options"].get("enable_fp_fusion", True)))
        row["shared_bytes"] = compiled.metadata.shared
        row.update(occupancy(row["registers"], row["shared_bytes"], row["num_warps"]))
    except Exception as error:  # reported per row; the tests fail on any
        row["error"] = f"{type(error).__name__}: {str(error)[:2000]}"
    row["memory_bound"] = row["kernel"] in MEMORY_BOUND
    return row


def compile_all(launches: list[dict], jobs: int) -> list[dict[str, Any]]:
    """Every launch compiled, in parallel over ``jobs`` worker processes."""
    if jobs <= 1:
        return [compile_launch(launch) for launch in launches]
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(compile_launch, launches))


# ----------------------------------------------------------------------------- report
def _sort_key(row: dict) -> tuple:
    return row["module"], row["kernel"], row["dtype"], json.dumps(row["constexprs"], sort_keys=True), \
        row["specialized_to_1"], row["num_warps"], row["num_stages"]


def _constexpr_text(row: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in row["constexprs"].items())


STATIC_SOURCE = ("`python -m perf.resources` (no GPU)",
                 "One row per distinct launch recorded from the ops' GPU launch code over `perf/kernel_calls.py`",
                 "Static figures only: nothing here was run on a GPU.")


def markdown(rows: list[dict], header: dict, source: tuple[str, str, str] = STATIC_SOURCE) -> str:
    """The report table; ``source`` says how the rows were made (command, rows, caveat)."""
    command, what, caveat = source
    lines = [
        "# sm_90 resources of every kernel configuration",
        "",
        f"Generated by {command}: triton {header['triton']}, ptxas "
        f"{header['ptxas']}, target sm_90a. {what}; registers, spills and stack per thread from `ptxas -v`, "
        f"shared memory per block from the compiled kernel. Warps/SM is the theoretical occupancy "
        f"(64K registers allocated per warp in units of 256, 228 KB shared memory with 1 KB reserved "
        f"per block, at most 64 warps and 32 blocks per SM); memory-bound kernels (marked *) need "
        f">= {MIN_WARPS_MEMORY_BOUND}. `=1` lists integer arguments Triton specialised to the constant 1 "
        f"(unit strides). {caveat}",
        "",
        f"{header['rows']} configurations, {header['failed']} failed to compile, "
        f"{header['spilling']} with spill stores, {header['under_occupied']} memory-bound below "
        f"{MIN_WARPS_MEMORY_BOUND} warps/SM.",
        "",
        "| kernel | dtype | constexprs | =1 | warps | stages | regs | spill st | spill ld | stack | shared | "
        "warps/SM | limit |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        name = row["kernel"] + (" *" if row["memory_bound"] else "")
        ones = " ".join(row["specialized_to_1"])
        if "error" in row:
            lines.append(f"| {name} | {row['dtype']} | {_constexpr_text(row)} | {ones} | {row['num_warps']} | "
                         f"{row['num_stages']} | FAILED: {row['error'][:120]} | | | | | | |")
            continue
        lines.append(f"| {name} | {row['dtype']} | {_constexpr_text(row)} | {ones} | {row['num_warps']} | "
                     f"{row['num_stages']} | {row['registers']} | {row['spill_stores']} | {row['spill_loads']} | "
                     f"{row['stack']} | {row['shared_bytes']} | {row['warps_per_sm']} | {row['limited_by']} |")
    return "\n".join(lines) + "\n"


def _cached_kernel_row(meta_path: Path) -> dict[str, Any] | None:
    """The report row of one kernel in a Triton cache, or None for other cached files."""
    ptx = meta_path.with_suffix(".ptx")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if not ptx.is_file() or "num_warps" not in meta:  # group files and other cached artefacts
        return None
    row = dict(kernel=meta.get("name", meta_path.stem), module=meta_path.parent.name, dtype="-",
               constexprs={}, specialized_to_1=[], num_warps=meta["num_warps"],
               num_stages=meta.get("num_stages", 0), calls=[], shared_bytes=meta.get("shared", 0))
    try:
        row.update(ptxas_resources(ptx.read_text(), meta.get("enable_fp_fusion", True)))
        row.update(occupancy(row["registers"], row["shared_bytes"], row["num_warps"]))
    except Exception as error:  # reported per row
        row["error"] = f"{type(error).__name__}: {str(error)[:2000]}"
    row["memory_bound"] = row["kernel"] in MEMORY_BOUND
    return row


def cache_rows(cache_dir: Path, jobs: int) -> list[dict[str, Any]]:
    """Report rows for the kernels Triton compiled into ``cache_dir``: on a GPU machine, the
    kernels that actually ran (the GPU window points ``TRITON_CACHE_DIR`` there). Each cached
    kernel's metadata JSON gives its name, warps, stages and shared memory; ptxas -v over its
    cached PTX (``jobs`` at a time) gives registers and spills. Constexprs are not in the cache:
    the rows name the kernel, its options and the cache entry."""
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        rows = pool.map(_cached_kernel_row, sorted(cache_dir.rglob("*.json")))
        return [row for row in rows if row is not None]


def summary(rows: list[dict]) -> dict[str, int]:
    ok = [row for row in rows if "error" not in row]
    return dict(rows=len(rows), failed=len(rows) - len(ok),
                spilling=sum(row["spill_stores"] > 0 for row in ok),
                under_occupied=sum(row["memory_bound"] and row["warps_per_sm"] < MIN_WARPS_MEMORY_BOUND
                                   for row in ok))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf.resources", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for resources.json and .md")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel compiles")
    parser.add_argument("--only", default="", help="only the kernel calls whose name contains this")
    parser.add_argument("--from-cache", type=Path, default=None, metavar="TRITON_CACHE_DIR",
                        help="report the kernels compiled into this Triton cache (those that ran on a GPU) "
                             "instead of recording and compiling the ops' launches")
    args = parser.parse_args(argv)
    if args.from_cache is not None:
        return report_cache(args.from_cache, args.out, args.jobs)
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        parser.error("unset TRITON_INTERPRET: the report records the GPU launch code, not kernel-test mode")

    import triton

    from perf.kernel_calls import CALLS

    started = time.perf_counter()
    names = [call.name for call in CALLS if args.only in call.name]
    names += [INT64_PREFIX + name for name in names if any(name.startswith(prefix) for prefix in INT64_CALLS)]
    launches = record_in_processes(names, args.jobs)
    recorded = time.perf_counter()
    rows = sorted(compile_all(launches, args.jobs), key=_sort_key)
    header = dict(triton=triton.__version__, ptxas=_ptxas_version(),
                  capability=CAPABILITY, record_s=round(recorded - started, 1),
                  compile_s=round(time.perf_counter() - recorded, 1), **summary(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "resources.json").write_text(json.dumps(dict(header=header, rows=rows), indent=1) + "\n")
    (args.out / "resources.md").write_text(markdown(rows, header))
    print(f"{header['rows']} kernel configurations (recorded in {header['record_s']} s, compiled in "
          f"{header['compile_s']} s): {header['failed']} failed, {header['spilling']} spilling, "
          f"{header['under_occupied']} memory-bound under {MIN_WARPS_MEMORY_BOUND} warps/SM -> {args.out}")
    return 0


def _ptxas_version() -> str:
    result = subprocess.run([ptxas_path(), "--version"], capture_output=True, text=True)
    return (result.stdout.strip().splitlines() or ["unknown"])[-1]


def report_cache(cache_dir: Path, out: Path, jobs: int) -> int:
    """``--from-cache``: resources.json / .md of the kernels in a Triton cache."""
    import triton

    rows = sorted(cache_rows(cache_dir, jobs), key=_sort_key)
    header = dict(triton=triton.__version__, ptxas=_ptxas_version(), capability=CAPABILITY,
                  source=f"Triton cache {cache_dir}", **summary(rows))
    out.mkdir(parents=True, exist_ok=True)
    (out / "resources.json").write_text(json.dumps(dict(header=header, rows=rows), indent=1) + "\n")
    source = (f"`python -m perf.resources --from-cache` on the GPU machine",
              "One row per kernel compiled into the Triton cache of the GPU run (the kernels that ran; "
              "constexprs are not recorded there)", "Registers and spills are ptxas's; the kernels ran.")
    (out / "resources.md").write_text(markdown(rows, header, source))
    print(f"{header['rows']} cached kernels: {header['failed']} failed, {header['spilling']} spilling, "
          f"{header['under_occupied']} memory-bound under {MIN_WARPS_MEMORY_BOUND} warps/SM -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
