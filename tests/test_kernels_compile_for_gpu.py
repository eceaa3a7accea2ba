"""Every Triton kernel, as launched by the ops, compiles ahead of time to sm_90 machine code.

No GPU is needed: the launches are recorded in kernel-test mode (see record_kernel_launches.py)
and compiled with the ptxas that ships with Triton. This catches what the interpreter lets
through: tensor-valued branches, dot operand types, shared-memory or register overflow.
"""
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import KERNEL_TEST_MODE

def _triton_version() -> tuple[int, int]:
    import triton
    return tuple(int(part) for part in triton.__version__.split(".")[:2])


pytestmark = [
    pytest.mark.skipif(KERNEL_TEST_MODE, reason="compiles for the GPU; needs the real Triton compiler"),
    # recording runs the kernels in the interpreter, which before triton 3.8 cannot take
    # range() over a scalar kernel argument under numpy 2 (nms_scan_kernel); CI has 3.8
    pytest.mark.skipif(_triton_version() < (3, 8), reason="kernel-test mode needs triton >= 3.8"),
]

SHARED_MEMORY_H100 = 228 * 1024


def recorded_launches():
    env = dict(os.environ, TRITON_INTERPRET="1")
    script = Path(__file__).with_name("record_kernel_launches.py")
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout)


def triton_type(arg):
    import triton.language as tl
    if "ptr" in arg:
        return "*" + {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64",
                      "int64": "i64", "int32": "i32", "int16": "i16", "int8": "i8", "uint8": "u8",
                      "bool": "i1"}[arg["ptr"]]
    value = arg["value"]
    if isinstance(value, bool):
        return "i1"
    if isinstance(value, int):
        return "i32" if -2**31 <= value < 2**31 else "i64"
    if isinstance(value, float):
        return "fp32"
    raise AssertionError(f"unexpected runtime argument {arg}; tl: {tl}")


def constexpr_value(arg):
    import triton.language as tl
    if "tl_dtype" in arg:
        return getattr(tl, {"fp32": "float32", "fp64": "float64", "fp16": "float16", "bf16": "bfloat16",
                            "int32": "int32", "int64": "int64"}.get(arg["tl_dtype"], arg["tl_dtype"]))
    return arg["value"]


def test_every_recorded_kernel_compiles_for_sm90():
    pytest.importorskip("triton.backends.nvidia")
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    launches = recorded_launches()
    assert launches, "no kernel launch recorded"
    compiled, failures = set(), []
    for launch in launches:
        module_name, _, kernel_name = launch["kernel"].rpartition(".")
        fn = getattr(importlib.import_module(module_name), kernel_name)
        signature, constexprs = {}, {}
        for param in fn.params:
            arg = launch["args"][param.name]
            if param.is_constexpr:
                signature[param.name] = "constexpr"
                constexprs[param.name] = constexpr_value(arg)
            else:
                signature[param.name] = triton_type(arg)
        key = json.dumps([launch["kernel"], signature, {k: str(v) for k, v in constexprs.items()},
                          launch["options"]], sort_keys=True)
        if key in compiled:
            continue
        compiled.add(key)
        options = {k: v for k, v in launch["options"].items() if k != "enable_fp_fusion"}
        if "enable_fp_fusion" in launch["options"]:
            options["enable_fp_fusion"] = launch["options"]["enable_fp_fusion"]
        try:
            kernel = triton.compile(ASTSource(fn, signature, constexprs=constexprs),
                                    target=GPUTarget("cuda", 90, 32), options=options)
            assert kernel.metadata.shared <= SHARED_MEMORY_H100, f"shared memory {kernel.metadata.shared}"
        except Exception as error:  # collect all, report together
            failures.append(f"{launch['op']}: {launch['kernel']} {constexprs}: {str(error)[:800]}")
    assert not failures, "\n".join(failures)
