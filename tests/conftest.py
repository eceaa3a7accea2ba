import json
import os
import subprocess
import sys
from pathlib import Path

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
