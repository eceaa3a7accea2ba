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


def test_device_flag_past_the_last_gpu_is_a_clear_error():
    from tritonvision.training.distributed import resolve_device

    with pytest.raises(ValueError, match="use --device"):
        resolve_device(f"cuda:{torch.cuda.device_count() + 3}")


# ----------------------------------------------------------------------------- GPU
OUTPUT_TOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 5e-2}
"""Relative to the largest entry: the Triton kernel and the CPU torch path sum in other orders."""


def _example_in(name: str, dtype: torch.dtype) -> tuple:
    """The op's example arguments (on CPU) with every floating tensor in ``dtype``."""
    return tuple(a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                 for a in REGISTERED[name].example(torch.device("cpu")))


def _to(args: tuple, device: torch.device) -> tuple:
    return tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)


def _assert_matches_cpu_torch_path(name: str, dtype: torch.dtype, device: torch.device) -> None:
    """The op on ``device`` (Triton) gives the CPU torch implementation's outputs, on ``device``."""
    fused = REGISTERED[name]
    args = _example_in(name, dtype)
    expected = fused.torch_impl(*args)
    got = fused.op(*_to(args, device))
    torch.cuda.synchronize(device)
    expected, got = ((o,) if isinstance(o, torch.Tensor) else tuple(o) for o in (expected, got))
    assert len(got) == len(expected)
    device = torch.device(device.type, torch.cuda.current_device() if device.index is None else device.index)
    for i, (mine, theirs) in enumerate(zip(got, expected)):
        assert mine.device == device, (name, i, mine.device)
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape, (name, i, mine.dtype, mine.shape)
        if not theirs.is_floating_point():
            assert torch.equal(mine.cpu(), theirs), (name, i)
            continue
        tol = OUTPUT_TOL[theirs.dtype]
        scale = max(1.0, theirs.abs().max().item())
        torch.testing.assert_close(mine.cpu().double(), theirs.double(), atol=tol * scale, rtol=tol)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_gpu_op_matches_the_cpu_torch_path(name, dtype):
    torch.backends.cudnn.allow_tf32 = False      # deconv's float32 dots in IEEE, as on CPU
    _assert_matches_cpu_torch_path(name, dtype, torch.device("cuda"))


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_gpu_op_launches_on_its_tensors_device_not_the_current_one(name):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs a second GPU")
    torch.backends.cudnn.allow_tf32 = False
    with torch.cuda.device(0):
        _assert_matches_cpu_torch_path(name, torch.float32, torch.device("cuda", 1))
        assert torch.cuda.current_device() == 0


@pytest.mark.gpu
def test_gpu_device_flag_makes_that_gpu_current(capsys):
    last = torch.cuda.device_count() - 1
    assert main(["info", "--device", f"cuda:{last}"]) == 0
    assert torch.cuda.current_device() == last
    assert "FAILED" not in capsys.readouterr().out
