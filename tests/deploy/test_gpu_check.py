"""scripts/gpu_check.py: a no-op that says so without CUDA (CI), and the parity it computes where there is one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from app.core.inference.segmenter import Segmenter, open_session
from scripts.gpu_check import IMAGES, heldout_inputs, model_ms, parity
from tests.support import REPO


def test_without_a_cuda_provider_it_says_so_and_exits_0(tmp_path: Path) -> None:
    report = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, "-m", "scripts.gpu_check", "--out", str(report)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    written = json.loads(report.read_text())
    assert written == json.loads(done.stdout.splitlines()[-1])
    assert written["cuda"] is False
    assert written["detail"] == "no CUDA provider in this onnxruntime build: nothing to check"
    assert "CPUExecutionProvider" in written["available_providers"]


def test_parity_of_a_provider_with_itself_is_exact(tiny_model_path: Path) -> None:
    """What the GPU run computes, on two CPU sessions: the held-out inputs, the logit difference, the masks."""
    inputs = heldout_inputs(Segmenter(tiny_model_path, "x", threads=1))
    assert inputs.shape == (IMAGES, 3, 64, 64) and inputs.dtype == np.float32
    first, second = open_session(tiny_model_path, 1), open_session(tiny_model_path, 1)
    assert parity(first, second, inputs) == {"max_logit_diff": 0.0, "mask_agreement": 1.0}
    assert model_ms(first, inputs, 8) > 0
