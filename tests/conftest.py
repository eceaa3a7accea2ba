import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch

KERNEL_TEST_MODE = os.environ.get("TRITON_INTERPRET", "0") == "1"
ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed_per_test(request):
    """Fresh random inputs every run, but reproducible from the printed seed on failure."""
    seed = int.from_bytes(os.urandom(4), "little")
    torch.manual_seed(seed)
    request.node.user_properties.append(("seed", seed))
    yield


@pytest.fixture(autouse=True)
def _restore_global_flags():
    """Every test leaves the TF32 switches, the CUDA sync debug mode and the current CUDA
    device as it found them, whatever it sets and however it ends."""
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    cuda_state = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda_state = torch.cuda.get_sync_debug_mode(), torch.cuda.current_device()
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        mode, device = cuda_state or (0, 0)     # CUDA started in this test: its defaults
        torch.cuda.set_sync_debug_mode(mode)
        torch.cuda.set_device(device)


@contextlib.contextmanager
def no_host_sync():
    """Inside, any CUDA call that waits for the GPU (a copy to the host, ``.item()``, ``nonzero``,
    a blocking copy from pageable memory...) raises; the previous mode comes back however it ends."""
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


def capture(fn: Callable[[], object], warmup: int = 2) -> tuple[torch.cuda.CUDAGraph, object]:
    """``fn()`` captured in a CUDA graph: (graph, the outputs it fills on each ``replay()``).

    First ``warmup`` calls on a side stream, as torch's CUDA graph notes ask (Triton compiles
    its kernels, cuDNN and the caching allocator settle), then one call under capture."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = fn()
    return graph, outputs


def run_expecting_device_assert(code: str) -> None:
    """Run ``code`` in a fresh Python (a failed device-side assertion leaves the CUDA context
    unusable) and check that it died of the assertion -- whichever later CUDA call reports it
    -- and not of a host sync under ``set_sync_debug_mode("error")``."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).parents[1])
    assert result.returncode != 0, result.stdout[-2000:]
    assert "synchronizing CUDA operation" not in result.stderr, result.stderr[-3000:]
    assert "device-side assert" in result.stderr, result.stderr[-3000:]


@pytest.fixture(scope="session")
def sm90_resources(tmp_path_factory) -> list[dict]:
    """The rows of ``python -m perf.resources``: every kernel configuration the ops launch on a
    GPU, compiled for sm_90 (once per session, in a subprocess, with an empty Triton cache so
    that each row's compile_s is a real compile)."""
    pytest.importorskip("triton.backends.nvidia")
    out = tmp_path_factory.mktemp("sm90-static")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(out / "triton-cache")
    result = subprocess.run([sys.executable, "-m", "perf.resources", "--out", str(out)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=800)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((out / "resources.json").read_text())["rows"]
