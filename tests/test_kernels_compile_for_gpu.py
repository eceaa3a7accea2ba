"""Every Triton kernel, at every configuration the ops launch on a GPU, compiles ahead of time
to sm_90 machine code, within the chip's resources.

No GPU is needed: ``perf/resources.py`` records the launches of ``perf/kernel_calls.py``
through the ops' GPU launch code and compiles each with the ptxas that ships with Triton
(the ``sm90_resources`` fixture). This catches what the interpreter lets through:
tensor-valued branches, dot operand types, shared-memory or register overflow.
"""
import ast
from pathlib import Path

import pytest

from conftest import KERNEL_TEST_MODE

pytestmark = pytest.mark.skipif(KERNEL_TEST_MODE, reason="compiles for the GPU; needs the real Triton compiler")

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
SHARED_PER_BLOCK_SM90 = 227 * 1024


def launched_kernels() -> set[str]:
    """Names of the @triton.jit functions in kernels/ that the ops launch (``*_kernel``)."""
    names = set()
    for source in KERNELS.glob("*.py"):
        for node in ast.parse(source.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.endswith("_kernel"):
                names.add(node.name)
    return names


def test_every_recorded_kernel_configuration_compiles_for_sm90(sm90_resources):
    failures = [f"{row['kernel']} {row['dtype']} {row['constexprs']}: {row['error'][:800]}"
                for row in sm90_resources if "error" in row]
    assert not failures, "\n".join(failures)


def test_every_kernel_fits_the_shared_memory_of_a_block(sm90_resources):
    too_big = [f"{row['kernel']} {row['dtype']} {row['constexprs']}: {row['shared_bytes']} bytes"
               for row in sm90_resources if row.get("shared_bytes", 0) > SHARED_PER_BLOCK_SM90]
    assert not too_big, "\n".join(too_big)


def test_the_kernel_calls_reach_every_kernel(sm90_resources):
    assert launched_kernels() <= {row["kernel"] for row in sm90_resources}
