"""`safeguard-collector dpia` on a real data folder: the pack is written from the live settings,
and after a category and a retention period change the next pack says what changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from collector.integrity import audit
from collector.paths import DataDir
from collector.storage.store import Store
from rules.load import DEFAULT_DIR
from tests.processes import run

pytestmark = pytest.mark.integration


def test_the_pack_follows_the_settings_and_says_what_changed(tmp_path: Path) -> None:
    data = tmp_path / "collector"
    run("safeguard-collector", "init", "--data", data, "--school", "Oak Primary")

    first = run("safeguard-collector", "dpia", "--data", data).stdout
    assert "the first pack from this collector" in first
    assert "KS2 readability: Flesch-Kincaid grade" in first and "passed" in first
    folder = data / "dpia"
    names = {p.name for p in folder.iterdir()}
    assert {"dpia.md", "notice-pupils.md", "notice-parents.md", "notice-staff.md",
            "last-settings.json"} <= names  # fmt: skip
    dpia = (folder / "dpia.md").read_text()
    assert "Oak Primary" in dpia and "| Gambling | `gambling` | on |" in dpia
    assert "365 days (about 1 year)" in dpia
    fingerprint = json.loads((folder / "last-settings.json").read_text())["fingerprint"]
    assert fingerprint in dpia

    again = run("safeguard-collector", "dpia", "--data", data).stdout
    assert "no change since the last pack" in again

    # The school switches gambling off and keeps events for 90 days.
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_DIR, rules)
    gambling = rules / "keywords" / "gambling.toml"
    gambling.write_text(gambling.read_text().replace("enabled = true", "enabled = false", 1))
    run("safeguard-collector", "policy", "publish", "--data", data, "--rules", rules)
    run("safeguard-collector", "retention", "--data", data, "--events", "90d")

    out = tmp_path / "pack"
    later = run("safeguard-collector", "dpia", "--data", data, "--out", out).stdout
    assert "  - Category 'gambling' switched off" in later
    assert "  - Retention for events changed from 365 to 90 days" in later
    dpia = (out / "dpia.md").read_text()
    assert "| Gambling | `gambling` | off |" in dpia and "90 days" in dpia
    assert "- Category 'gambling' switched off" in dpia
    assert "We keep what it finds for about 3 months." in (out / "notice-pupils.md").read_text()

    store = Store(DataDir(data).database)
    try:
        rows = [r for r in audit.read(store.con, 100) if r["action"] == "dpia_written"]
    finally:
        store.close()
    assert len(rows) == 3 and f"folder={out}" in rows[0]["detail"]


def test_a_folder_that_is_not_a_collector_is_refused_plainly(tmp_path: Path) -> None:
    got = run("safeguard-collector", "dpia", "--data", tmp_path / "nowhere", check=False)
    assert got.returncode == 1
    assert "does not exist" in got.stderr and "Traceback" not in got.stderr
