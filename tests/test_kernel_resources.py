"""The kernels fit an sm_90 SM, at every configuration the ops launch on a GPU (static figures
from ``perf/resources.py``; see perf/results/sm90-static/resources.md for the table).

* no register spills (spill stores to local memory) in any configuration and dtype;
* memory-bound kernels leave room for at least 16 resident warps per SM (latency hiding);
* no kernel takes long to compile, whatever the user passes (the upsample backward at scale 8
  used to unroll its candidate loops: 50 s).
"""
import pytest

from conftest import KERNEL_TEST_MODE

pytestmark = pytest.mark.skipif(KERNEL_TEST_MODE, reason="compiles for the GPU; needs the real Triton compiler")

MIN_WARPS_MEMORY_BOUND = 16
MAX_COMPILE_SECONDS = 20.0
"""Per kernel configuration: the goal is ~10 s; the bound leaves room for a loaded CI machine and
still catches unrolling that grows with an argument (50 s at scale 8, minutes at scale 32)."""


def _describe(row: dict) -> str:
    return (f"{row['kernel']} {row['dtype']} {row['constexprs']} warps={row['num_warps']} "
            f"stages={row['num_stages']}: {row.get('registers')} registers, {row.get('spill_stores')} B spill "
            f"stores, {row.get('warps_per_sm')} warps/SM")


def test_no_kernel_configuration_spills_registers(sm90_resources):
    spilling = [_describe(row) for row in sm90_resources if row.get("spill_stores", 0) > 0]
    assert not spilling, "\n".join(spilling)


def test_memory_bound_kernels_keep_16_warps_resident_per_sm(sm90_resources):
    starved = [_describe(row) for row in sm90_resources
               if row["memory_bound"] and row.get("warps_per_sm", MIN_WARPS_MEMORY_BOUND) < MIN_WARPS_MEMORY_BOUND]
    assert not starved, "\n".join(starved)


def test_upsample_backward_at_scale_8_compiles_in_seconds(sm90_resources):
    at_scale_8 = [row for row in sm90_resources if row["kernel"] == "upsample_bilinear_backward_kernel"
                  and any("/x8/" in call for call in row["calls"])]
    assert at_scale_8, "no upsample backward launch at scale 8 recorded (perf/kernel_calls.py)"
    slow = [f"{_describe(row)}: {row['compile_s']} s" for row in at_scale_8 if row["compile_s"] > 5.0]
    assert not slow, "\n".join(slow)


def test_no_kernel_configuration_takes_long_to_compile(sm90_resources):
    slow = [f"{_describe(row)}: {row['compile_s']} s" for row in sm90_resources
            if row.get("compile_s", 0) > MAX_COMPILE_SECONDS]
    assert not slow, "\n".join(slow)
