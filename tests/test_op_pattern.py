"""The op pattern: every fused op is registered under torch.ops.tritonvision and routed by device."""
import pytest
import torch

import tritonvision.ops  # noqa: F401  (registers every op)
from conftest import KERNEL_TEST_MODE
from tritonvision.cli import main
from tritonvision.ops._op import REGISTERED, backend, uses_triton


def test_every_registered_op_is_reachable_through_torch_ops():
    assert REGISTERED, "no fused op registered"
    for name in REGISTERED:
        assert hasattr(torch.ops.tritonvision, name), name


def test_routing_follows_the_device_and_kernel_test_mode():
    assert backend("cuda") == "triton"
    assert backend("cpu") == ("triton-interpreter" if KERNEL_TEST_MODE else "torch")
    assert uses_triton(torch.empty(1)) == KERNEL_TEST_MODE
    assert backend("meta") == "torch"


@pytest.mark.kernel
@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_every_op_runs_on_its_example_inputs(name):
    fused = REGISTERED[name]
    fused.op(*fused.example(torch.device("cpu")))


@pytest.mark.kernel
def test_info_command_lists_every_op_with_its_backend(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    expected_backend = "triton-interpreter" if KERNEL_TEST_MODE else "torch"
    for name in REGISTERED:
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert expected_backend in line and "FAILED" not in line
