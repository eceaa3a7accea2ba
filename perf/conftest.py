"""pytest-benchmark suite options: ``pytest perf/ [--size small|full] [--perf-device cpu|cuda]
[--perf-skip compile,...] [--perf-rounds N] [--perf-sets N] [--perf-budget S]``.

Every case of every ``perf/cases/<family>.py`` is collected once per session; on CPU the
"compile" baselines are skipped by default (each costs 5-30 s of compiling there; pass
``--perf-skip=`` to time them too), on CUDA nothing is skipped.
"""
from __future__ import annotations

import pytest
import torch


def pytest_addoption(parser):
    group = parser.getgroup("tritonvision perf")
    group.addoption("--size", choices=("small", "full"), default=None,
                    help="case sizes: 'small' (default on CPU) or 'full' (default on CUDA)")
    group.addoption("--perf-device", choices=("cpu", "cuda"), default=None,
                    help="device to benchmark on (default: cuda if available, else cpu)")
    group.addoption("--perf-skip", default=None,
                    help="comma-separated baselines not to time (default: 'compile' on CPU, none on CUDA)")
    group.addoption("--perf-rounds", type=int, default=None,
                    help="timed rounds per function (default 3 on CPU, 20 on CUDA)")
    group.addoption("--perf-sets", type=int, default=3, help="rotating input sets per case (default 3)")
    group.addoption("--perf-budget", type=float, default=None,
                    help="CPU: seconds of timed rounds per function, fewer rounds for slow ones "
                         "(default 1; 0 for no limit)")


class PerfSettings:
    """The session's device, size and collected cases."""

    def __init__(self, config):
        from perf.runner import collect_cases

        name = config.getoption("--perf-device") or ("cuda" if torch.cuda.is_available() else "cpu")
        self.device = torch.device(name)
        self.size = config.getoption("--size") or ("full" if self.device.type == "cuda" else "small")
        skip = config.getoption("--perf-skip")
        if skip is None:
            skip = "compile" if self.device.type == "cpu" else ""
        self.skip = {s.strip() for s in skip.split(",") if s.strip()}
        self.rounds = config.getoption("--perf-rounds") or (20 if self.device.type == "cuda" else 3)
        self.n_sets = config.getoption("--perf-sets")
        budget = config.getoption("--perf-budget")
        self.budget = (1.0 if budget is None else budget) if self.device.type == "cpu" else 0.0
        if self.device.type == "cuda" and not torch.cuda.is_available():
            self.cases, self.failures = [], []
        else:
            self.cases, self.failures = collect_cases(self.device, self.size)


_SETTINGS = pytest.StashKey[PerfSettings]()


def perf_settings(config) -> PerfSettings:
    if _SETTINGS not in config.stash:
        config.stash[_SETTINGS] = PerfSettings(config)
    return config.stash[_SETTINGS]


def pytest_generate_tests(metafunc):
    if "perf_function" not in metafunc.fixturenames:
        return
    settings = perf_settings(metafunc.config)
    params = []
    for case in settings.cases:
        for fn_name in ["ours", *case.baselines]:
            if fn_name in settings.skip:
                continue
            label = f"{case.family}:{case.name}:{case.shape}:{case.dtype}:{fn_name}".replace(" ", "_")
            params.append(pytest.param((case, fn_name), id=label))
    metafunc.parametrize("perf_function", params)


@pytest.fixture
def perf(request) -> PerfSettings:
    return perf_settings(request.config)
