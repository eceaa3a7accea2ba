"""pytest-benchmark over every case: ``pytest perf/`` (options in perf/conftest.py).

Each case x {ours, each baseline} is one benchmark, grouped by
``family:name:shape:dtype`` so pytest-benchmark prints ours next to its baselines.
Inputs rotate over ``--perf-sets`` sets (``make_inputs(k)``) so caches do not flatter;
one warm-up call per set on CUDA (compiles, autotuning) comes before the timed rounds.
On CPU a function whose first call is slow gets fewer rounds (``--perf-budget`` seconds
per function, default 1), so the smoke suite stays short whatever the case files hold.
"""
from __future__ import annotations

import itertools
import time

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
    start = time.perf_counter()
    call(*input_sets[0])
    first = time.perf_counter() - start
    rounds, warmup_rounds = perf.rounds, 1
    if cuda:  # compiles and autotuning happen once per shape: warm every set up
        for inputs in input_sets[1:]:
            call(*inputs)
    elif perf.budget:  # a slow function gets fewer rounds, so the CPU suite stays short
        rounds = max(1, min(rounds, int(perf.budget / max(first, 1e-9))))
        warmup_rounds = 1 if first * (rounds + 1) <= perf.budget else 0
    rotation = itertools.cycle(input_sets)
    benchmark.group = f"{case.family}:{case.name}:{case.shape}:{case.dtype}"
    benchmark.name = fn_name
    benchmark.extra_info.update(function=fn_name, bytes_moved=case.bytes_moved, flops=case.flops,
                                device=str(perf.device), size=perf.size)
    # fails when the function raises on any input set
    benchmark.pedantic(call, setup=lambda: (next(rotation), {}), rounds=rounds,
                       warmup_rounds=warmup_rounds)
