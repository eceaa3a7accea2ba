"""pytest-benchmark over every case: ``pytest perf/`` (options in perf/conftest.py).

Each case x {ours, each baseline} is one benchmark, grouped by
``family:name:shape:dtype`` so pytest-benchmark prints ours next to its baselines.
Inputs rotate over ``--perf-sets`` sets (``make_inputs(k)``) so caches do not flatter;
one warm-up call per set (compiles, autotuning) comes before the timed rounds.
"""
from __future__ import annotations

import itertools

import torch


def test_case_modules_load(perf):
    """Every perf/cases/<family>.py imports and its cases() returns BenchCases."""
    problems = [f"{f.family} [{f.stage}] {f.error}" for f in perf.failures]
    assert not problems, "broken benchmark case modules:\n" + "\n".join(problems)


def test_benchmark(benchmark, perf, perf_function):
    case, fn_name = perf_function
    fn = case.ours if fn_name == "ours" else case.baselines[fn_name]
    cuda = perf.device.type == "cuda"

    def call(*inputs):
        out = fn(*inputs)
        if cuda:
            torch.cuda.synchronize(perf.device)
        return out

    input_sets = [case.make_inputs(k) for k in range(perf.n_sets)]
    for inputs in input_sets:
        call(*inputs)
    rotation = itertools.cycle(input_sets)
    benchmark.group = f"{case.family}:{case.name}:{case.shape}:{case.dtype}"
    benchmark.name = fn_name
    benchmark.extra_info.update(function=fn_name, bytes_moved=case.bytes_moved, flops=case.flops,
                                device=str(perf.device), size=perf.size)
    # fails when the function raises on any input set
    benchmark.pedantic(call, setup=lambda: (next(rotation), {}), rounds=perf.rounds, warmup_rounds=1)
