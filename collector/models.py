"""The semantic stage's model files, kept by SHA-256 and served to agents in chunks.

    policy publish ─▶ the policy's semantic.toml names a model (file, SHA-256)
                   ─▶ copy_for(policy): found beside the rules (rules/models/) and hashed,
                      kept as DIR/models/<sha256>
    agent ─FetchModel(sha256, offset)─▶ chunk(sha256, offset): at most CHUNK bytes

A model is too big for a policy bundle (and gRPC's 4 MiB message cap), so the signed policy
names it by hash and the agent fetches the file itself, resuming where it stopped, and
checks the whole file against that hash before using it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from collector.paths import DataDir
from rules.embed import MODEL_DIR, file_sha256
from rules.schema import Policy, PolicyError

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # 1 MiB per answer: far under gRPC's 4 MiB cap
_SHA = re.compile(r"^[0-9a-f]{64}$")


def models_dir(data: DataDir) -> Path:
    return data.root / "models"


def copy_for(data: DataDir, policy: Policy, rules_dir: Path) -> Path | None:
    """Keep the model the policy names (None if it names none). Looked for in the rules
    folder's sibling ``models/`` and in the package's ``rules/models/``."""
    sem = policy.semantic
    if sem is None or not sem.enabled:
        return None
    target = models_dir(data) / sem.model_sha256
    if target.exists() and file_sha256(target) == sem.model_sha256:
        return target
    for folder in (rules_dir.parent / "models", rules_dir / "models", MODEL_DIR):
        found = folder / sem.model
        if found.is_file() and file_sha256(found) == sem.model_sha256:
            target.parent.mkdir(mode=0o750, exist_ok=True)
            part = target.with_suffix(".part")
            shutil.copyfile(found, part)
            part.replace(target)
            log.info("model.kept sha256=%s from=%s bytes=%d", sem.model_sha256, found,
                     target.stat().st_size)  # fmt: skip
            return target
    raise PolicyError(f"semantic.toml names the model {sem.model} with SHA-256 "
                      f"{sem.model_sha256}, but no such file is in {rules_dir.parent / 'models'} "
                      f"or {MODEL_DIR} (build it: python rules/models/build.py)")  # fmt: skip


def chunk(data: DataDir, sha256: str, offset: int) -> tuple[bytes, int] | None:
    """(bytes from ``offset``, at most CHUNK; the file's size), or None if not kept."""
    if not _SHA.match(sha256) or offset < 0:
        return None
    path = models_dir(data) / sha256
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(min(offset, size))
            return f.read(CHUNK), size
    except FileNotFoundError:
        return None
