"""The semantic stage's sentence model: text in, a unit vector of 384 numbers out.

Runs ``rules/models/minilm-l6-int8.onnx`` (all-MiniLM-L6-v2, int8; built by
``rules/models/build.py``) with onnxruntime on one thread, tokenised by ``rules.wordpiece``
from the vocabulary the model file carries. onnxruntime and numpy are the ``semantic``
extra: imported only when a policy switches the stage on.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rules.schema import PolicyError
from rules.wordpiece import WordPiece

if TYPE_CHECKING:
    import numpy as np

# numpy's BLAS (the bank's similarities) on one thread too, set before numpy is imported:
# with a thread per CPU, each sentence's matrix product handed work to a second thread,
# which on a busy PC waited for a time slice (32 ms for a 0.7 ms product, load 7 on 2
# CPUs) and then spun for more work.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

MODEL_DIR = Path(__file__).resolve().parent / "models"
MODEL_FILE = "minilm-l6-int8.onnx"
MAX_TOKENS = 128  # a sentence longer than this is judged on its first 128 word pieces


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class SentenceModel:
    """One onnxruntime session, one thread: a classroom PC's spare core, not all of them."""

    def __init__(self, path: Path, sha256: str | None = None) -> None:
        try:
            import numpy as np
            import onnxruntime as ort
        except ImportError as exc:
            raise PolicyError(f"the semantic stage needs the 'semantic' extra "
                              f"(onnxruntime, numpy): {exc}") from None  # fmt: skip
        self.sha256 = file_sha256(path)
        if sha256 is not None and self.sha256 != sha256:
            raise PolicyError(f"{path}: SHA-256 is not the one the policy names ({sha256})")
        self._np = np
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.enable_cpu_mem_arena = False  # freed between sentences, not kept at its peak
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), opts,
                                                 providers=["CPUExecutionProvider"])  # fmt: skip
        except Exception as exc:  # onnxruntime raises its own classes for a bad file
            raise PolicyError(f"{path}: not a loadable model ({exc})") from None
        meta = self._session.get_modelmeta().custom_metadata_map
        if "vocab" not in meta:
            raise PolicyError(f"{path}: the model carries no vocabulary")
        self._tokens = WordPiece(meta["vocab"])

    def tokens(self, text: str) -> int:
        """How many word pieces the model reads of ``text`` (its special tokens included)."""
        return len(self._tokens.encode(text, MAX_TOKENS))

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, one row per text (texts are padded to the longest of the batch)."""
        np = self._np
        ids = [self._tokens.encode(t, MAX_TOKENS) for t in texts]
        width = max(len(i) for i in ids)
        batch = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, seq in enumerate(ids):
            batch[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        out: Any = self._session.run(["embedding"], {"input_ids": batch,
                                                     "attention_mask": mask})[0]  # fmt: skip
        return out  # type: ignore[no-any-return]
