"""Signed bundles: round trip, forged signature, older version, corrupt file, fuzz."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.bundle import (
    MATCHER_FILES,
    BundleError,
    build_bundle,
    compile_bundle,
    load_last_good,
    matcher_digest,
    save_last_good,
    sign_bundle,
    verify_bundle,
)  # fmt: skip
from rules.load import DEFAULT_DIR, read_folder
from rules.schema import PolicyError

pytestmark = pytest.mark.unit
# Deterministic property tests: the same examples on every run and every machine.
PROPERTY = settings(derandomize=True, deadline=None, max_examples=150,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])  # fmt: skip

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUB = KEY.public_key()
SIGNED = build_bundle(DEFAULT_DIR, 7, KEY)


def test_round_trip_and_determinism() -> None:
    assert compile_bundle(DEFAULT_DIR, 7) == compile_bundle(DEFAULT_DIR, 7)
    bundle = verify_bundle(SIGNED, PUB, installed=6)
    assert bundle.version == 7
    assert {c.name for c in bundle.policy.categories} >= {"grooming", "extremism"}
    assert bundle.policy.category("grooming").where.startswith("bundle:keywords/grooming.toml:")


def test_forged_signature_is_refused() -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(BundleError, match="signature does not verify"):
        verify_bundle(build_bundle(DEFAULT_DIR, 8, other), PUB)


def test_edited_payload_is_refused() -> None:
    outer = json.loads(SIGNED)
    payload = json.loads(base64.b64decode(outer["payload"]))
    rel = "keywords/grooming.toml"
    payload["files"][rel] = payload["files"][rel].replace("enabled = true", "enabled = false")
    outer["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(BundleError, match="signature does not verify"):
        verify_bundle(json.dumps(outer).encode(), PUB)


@pytest.mark.parametrize("installed", [7, 8, 100])
def test_older_or_equal_version_is_refused(installed: int) -> None:
    msg = f"version 7 is not newer than installed version {installed}"
    with pytest.raises(BundleError, match=msg):
        verify_bundle(SIGNED, PUB, installed=installed)


@pytest.mark.parametrize("data", [b"", b"not json", b"{}", b"[1]", SIGNED[:-10],
                                  SIGNED.replace(b'"signature":"', b'"signature":"!!')])
def test_corrupt_file_is_refused(data: bytes) -> None:
    with pytest.raises(BundleError, match=r"corrupt|does not verify"):
        verify_bundle(data, PUB)


def test_signed_but_invalid_policy_is_refused() -> None:
    files = {"policy.toml": "[policy]\nversion = 1\n"}
    payload = json.dumps({"format": "safeguard-policy-bundle/1", "version": 9, "files": files})
    with pytest.raises(PolicyError, match=r"bundle:.*missing"):
        verify_bundle(sign_bundle(payload.encode(), KEY), PUB)


def test_invalid_folder_is_not_published(rules_dir: Path) -> None:
    (rules_dir / "profiles.toml").write_text("[[profile]]\nname = 3\n")
    with pytest.raises(PolicyError, match=r"profiles\.toml:2: name must be a string"):
        compile_bundle(rules_dir, 1)
    with pytest.raises(BundleError, match="positive integer"):
        compile_bundle(DEFAULT_DIR, 0)


def test_last_good_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "state" / "policy.bundle"
    assert load_last_good(path, PUB) is None
    save_last_good(path, verify_bundle(SIGNED, PUB))
    assert load_last_good(path, PUB) is not None
    outer = json.loads(path.read_bytes())
    files = json.loads(base64.b64decode(outer["payload"]))
    files["version"] = 99  # a pupil's edit
    outer["payload"] = base64.b64encode(json.dumps(files).encode()).decode()
    path.write_text(json.dumps(outer))
    with pytest.raises(BundleError):
        load_last_good(path, PUB)


@PROPERTY
@given(st.binary(max_size=300))
def test_fuzz_bundle_loader(data: bytes) -> None:
    with pytest.raises(BundleError):
        verify_bundle(data, PUB)


@PROPERTY
@given(st.integers(0, len(SIGNED) - 1), st.integers(1, 255))
def test_fuzz_bit_flips(pos: int, flip: int) -> None:
    data = bytearray(SIGNED)
    data[pos] ^= flip
    try:
        verify_bundle(bytes(data), PUB)
    except PolicyError:
        return
    # Only flips JSON ignores (e.g. in the base64 padding or whitespace) may still verify.
    assert json.loads(bytes(data))["payload"] == json.loads(SIGNED)["payload"]


# Policy fields a matcher is made from, and the files they are loaded from (rules/load.py).
MATCHER_FIELDS = {"categories": "keywords/", "category": "keywords/", "classes": "classes",
                  "guards": "guards", "exemptions": "exemptions.toml",
                  "profile": "profiles.toml", "profiles": "profiles.toml"}  # fmt: skip


def test_a_matcher_is_named_by_every_file_it_is_made_from() -> None:
    """Agents keep compiled matchers named by ``matcher_digest``: were the compiler to read a
    policy field whose file the digest leaves out, an edit to that file would be served the
    old matcher. Every ``policy.<field>`` the matcher's modules read is listed here, and its
    file is in MATCHER_FILES."""
    rules = Path(__file__).resolve().parents[3] / "rules"
    read = set()
    for module in ("compile", "sequences", "scoring", "bulk_gate", "entries", "automaton"):
        read |= set(re.findall(r"\bpolicy\.([a-z_]+)", (rules / f"{module}.py").read_text()))
    assert read <= MATCHER_FIELDS.keys(), f"the compiler reads {read - MATCHER_FIELDS.keys()}"
    for field in read:
        assert MATCHER_FIELDS[field].startswith(MATCHER_FILES) or any(
            f.startswith(MATCHER_FIELDS[field]) for f in MATCHER_FILES), field  # fmt: skip


def test_bundles_of_the_same_lists_name_the_same_matcher() -> None:
    files = read_folder(DEFAULT_DIR)
    school = {**files, "evidence_key.toml": "[evidence]\nkey = 'another school'\n",
              "usb.toml": files["usb.toml"] + "\n# edited\n"}  # fmt: skip
    assert matcher_digest(school) == matcher_digest(files)
    for rel in ("keywords/extremism.toml", "classes.toml", "guards.toml", "profiles.toml",
                "exemptions.toml", "policy.toml"):  # fmt: skip
        assert matcher_digest({**files, rel: files[rel] + "\n# edited\n"}) != matcher_digest(
            files), rel  # fmt: skip
