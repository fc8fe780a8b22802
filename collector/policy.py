"""Publishing signed policy bundles and serving them to agents.

`rules/bundle.py` compiles and signs; the collector keeps every published bundle in
DIR/policy/bundle-<version>.json and the newest as DIR/policy/current.json, written
atomically, so `publish` works whether or not `serve` is running (no database involved) and a
running collector sees a new bundle at once: it names the newest version in every Welcome and
every ack, and connected agents fetch it.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from collector import models, pki
from collector.intake import vocabulary
from collector.paths import DataDir, write_secret
from collector.roster import profiles as roster_profiles
from collector.storage.store import Store
from protos import ingest_pb2
from rules import bundle as bundles
from rules.load import DEFAULT_DIR
from rules.load_evidence import evidence_key_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    version: int
    path: Path
    size: int


def _current_path(data: DataDir) -> Path:
    return data.policy_dir / "current.json"


def _version_of(raw: bytes) -> int:
    """The version a bundle says it is, without verifying it (we signed it)."""
    import base64

    payload = base64.b64decode(json.loads(raw)["payload"])
    return int(json.loads(payload)["version"])


_cache: dict[Path, tuple[float, int, bytes]] = {}


def current(data: DataDir) -> tuple[int, bytes] | None:
    """(version, bundle bytes) of the newest published bundle, read again only if changed."""
    path = _current_path(data)
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    cached = _cache.get(path)
    if cached is None or cached[0] != mtime:
        raw = path.read_bytes()
        try:
            version = _version_of(raw)
        except (ValueError, KeyError, TypeError) as exc:  # edited by hand, or damaged
            # Nothing to offer agents (they keep theirs); publishing again replaces it.
            log.error("policy.current_unreadable path=%s error=%s", path, type(exc).__name__)
            return None
        cached = (mtime, version, raw)
        _cache[path] = cached
    return cached[1], cached[2]


def screenshot_retention_days(data: DataDir) -> int:
    """screenshots.toml's retention_days in the published policy (0: kept as events are)."""
    import base64
    import tomllib

    found = current(data)
    if found is None:
        return 0
    try:
        files = json.loads(base64.b64decode(json.loads(found[1])["payload"]))["files"]
        text = files.get("screenshots.toml", "")
        return int(tomllib.loads(text).get("screenshots", {}).get("retention_days", 0))
    except (ValueError, KeyError, TypeError, AttributeError):
        return 0  # current() logged a damaged bundle; screenshots then go with their events


def current_version(data: DataDir) -> str:
    found = current(data)
    return str(found[0]) if found else ""


def newer_than(data: DataDir, have_version: str) -> ingest_pb2.PolicyBundle:
    """The current bundle if it is newer than what the agent has; else an empty answer."""
    found = current(data)
    have = int(have_version) if have_version.isdigit() else 0
    if found is None or found[0] <= have:
        return ingest_pb2.PolicyBundle()
    return ingest_pb2.PolicyBundle(version=str(found[0]), bundle=found[1])


def _source(data: DataDir) -> Path:
    return data.policy_dir / "source.txt"


def _as_published(data: DataDir, folder: Path, approved: list[dict[str, Any]],
                  assign: list[tuple[str, str]], into: Path) -> Path:  # fmt: skip
    """A copy of the policy folder as PCs get it: with the collector's evidence key (so
    screenshots are sealed to it, and the key comes signed with the policy), the console's
    approved exemptions and the roster's login -> profile entries
    (collector/roster/profiles.py) appended."""
    copy = into / "rules"
    shutil.copytree(folder, copy)
    (copy / "evidence_key.toml").write_text(
        evidence_key_file(pki.ensure_evidence_key(data)), encoding="utf-8")
    if approved:
        _add_exemptions(copy, approved)
    if assign:
        target = copy / "profiles.toml"
        text = target.read_text(encoding="utf-8") if target.exists() else ""
        try:
            known = {str(p.get("name")) for p in tomllib.loads(text).get("profile", [])}
        except tomllib.TOMLDecodeError:
            known = set()  # the load that follows names the file and line
        added, skipped = roster_profiles.assign_toml(assign, known)
        if skipped:
            log.warning("policy.roster_profiles_skipped logins=%d reason=profile_not_in_policy",
                        skipped)  # fmt: skip
        target.write_text(text + "\n" + added + "\n", encoding="utf-8")
    return copy


def _add_exemptions(copy: Path, approved: list[dict[str, Any]]) -> None:
    lines = ["", "# Approved in the DSL console (collector exemption requests)."]
    for e in approved:
        lines += [
            "[[exemption]]",
            f"id = {json.dumps('console-' + str(e['id']))}",
            f"group = {json.dumps(e['grp'])}",
            f"terms = {json.dumps([t for t in e['terms'].split(',') if t.strip()])}",
            f"sites = {json.dumps([t for t in e['sites'].split(',') if t.strip()])}",
            f"start = {e['start_date']}",
            f"end = {e['end_date']}",
            f"reason = {json.dumps(e['reason'])}",
            f"approver = {json.dumps(e['decided_by'] or '')}",
            "",
        ]
    target = copy / "exemptions.toml"
    existing = target.read_text(encoding="utf-8") if target.exists() else ""
    target.write_text(existing + "\n".join(lines), encoding="utf-8")


def publish(
    data: DataDir, rules_dir: Path | None = None, approved: list[dict[str, Any]] | None = None,
    assign: list[tuple[str, str]] | None = None,
) -> Published:  # fmt: skip
    """Validate, version, sign and publish a policy folder (default: the one published last, or
    the shipped one), with the console's approved exemptions and the roster's login -> profile
    pairs (`assign`, only when the school has switched that on) added. Raises
    rules.schema.PolicyError naming file and line when the policy does not load."""
    if rules_dir is None and _source(data).exists():
        rules_dir = Path(_source(data).read_text(encoding="utf-8").strip())
    folder = (rules_dir or DEFAULT_DIR).resolve()
    found = current(data)
    version = (found[0] if found else 0) + 1
    key = pki.load_policy_key(data)
    with tempfile.TemporaryDirectory() as tmp:
        source = _as_published(data, folder, approved or [], assign or [], Path(tmp))
        raw = bundles.build_bundle(source, version, key)
    public = Ed25519PublicKey.from_public_bytes(data.policy_pub.read_bytes())
    checked = bundles.verify_bundle(raw, public)  # as agents will: never publish what they refuse
    models.copy_for(data, checked.policy, folder)  # the file the policy names, for agents
    path = data.policy_dir / f"bundle-{version:06d}.json"
    write_secret(path, raw)
    # Its names before it is current: an agent that fetches it sends events that use them.
    vocabulary.add(data, checked.policy)
    write_secret(_current_path(data), raw)
    _source(data).write_text(str(folder) + "\n", encoding="utf-8")
    log.info("policy.published version=%d bytes=%d rules=%s exemptions=%d roster_logins=%d",
             version, len(raw), folder, len(approved or []), len(assign or []))
    return Published(version, path, len(raw))


def approved_exemptions(store: Store) -> list[dict[str, Any]]:
    """Exemption requests approved in the console that have not ended yet."""
    return approved_exemptions_in(store.con)


def approved_exemptions_in(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cur = con.execute(
        "SELECT id, grp, terms, sites, start_date, end_date, reason, decided_by "
        "FROM exemption_requests WHERE state = 'approved' AND end_date >= current_date "
        "ORDER BY id"
    )
    names = [d[0] for d in cur.description or []]
    rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    for row in rows:  # dates as TOML/JSON-ready text: this also crosses the admin socket
        row["start_date"], row["end_date"] = str(row["start_date"]), str(row["end_date"])
    return rows


def publish_again(
    data: DataDir, approved: list[dict[str, Any]], assign: list[tuple[str, str]]
) -> tuple[int | None, str]:
    """Publish the folder published last again, with what the database adds (after a roster
    import, or the school switching profiles by roster on or off). (version, "") when done,
    (None, why) when the policy does not load: what was asked of the roster is done all the
    same and the PCs keep the policy they have."""
    from rules.schema import PolicyError

    try:
        return publish(data, None, approved, assign).version, ""
    except PolicyError as exc:
        log.error("policy.republish_failed error=%s", exc)
        return None, f"the policy was not published again: {exc}"
