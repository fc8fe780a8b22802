"""The semantic stage runs on one core (issue 14's goal is per sentence on one core):
onnxruntime is given one thread (rules/embed.py), and numpy's BLAS, which computes the
bank's similarities, must not start a thread per CPU either."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit
BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
PROBE = """
import os
import rules.embed
before = len(os.listdir("/proc/self/task"))
import numpy
numpy.ones((512, 384), numpy.float32) @ numpy.ones(384, numpy.float32)
print(before, len(os.listdir("/proc/self/task")))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts /proc/self/task")
def test_numpy_starts_no_blas_threads_once_the_model_module_is_imported() -> None:
    if (os.cpu_count() or 1) < 2:
        pytest.fail("needs 2 CPUs or more: with one, BLAS starts no threads either way")
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARS}  # as a service starts
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()  # fmt: skip
    assert out[0] == out[1], f"threads before numpy {out[0]}, after {out[1]}"
