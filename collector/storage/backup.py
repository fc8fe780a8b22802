"""`backup` and `restore`: a consistent copy of the database with the files that rebuild the
node, and putting one back.

A backup is a folder (0700): `collector.duckdb` (0600), a snapshot made by DuckDB's `COPY FROM
DATABASE` in one transaction, so it is consistent while `serve` runs (the running collector
makes it on its writer thread, through the admin socket, so no commit lands half in it);
`node/`, the data folder's other files (CA certificate and key, server key and certificate,
policy key and folder, the enrolment journal, the collector id, console settings); and
`backup.json`, when it was made and what it holds. It holds special-category data about
children and the school's keys: it is as secret as the data folder.

Restoring keeps the current database aside (never deleted), puts the backup's in place, and
re-enrols from the journal the agents enrolled (or revoked) since the backup. The restored
heads are older than what the PCs were acknowledged; each PC is told the restored head when it
connects and sends again what it still holds after it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from collector.intake import enrolment
from collector.paths import DataDir, make_private_dir
from collector.storage.store import DatabaseError, Store, now_ms

log = logging.getLogger(__name__)

DATABASE = "collector.duckdb"
NODE = "node"
MANIFEST = "backup.json"


class BackupError(ValueError):
    """What is wrong with a backup or its destination, in words to act on."""


def snapshot(store: Store, folder: Path) -> dict[str, Any]:
    """Copy the database into folder/collector.duckdb in one transaction."""
    if folder.exists() and any(folder.iterdir()):
        raise BackupError(f"{folder} exists and is not empty; give a new folder for the backup")
    make_private_dir(folder)
    target = folder / DATABASE
    name = store.con.execute("SELECT current_database()").fetchone()
    store.con.execute("SELECT 1").fetchall()  # finish any result left open on the connection
    store.con.execute("ATTACH ? AS sg_backup", [str(target)])
    try:
        store.con.execute(f'COPY FROM DATABASE "{name[0] if name else "memory"}" TO sg_backup')
    finally:
        store.con.execute("DETACH sg_backup")
    target.chmod(0o600)
    log.info("backup.snapshot path=%s bytes=%d", target, target.stat().st_size)
    return {"path": str(target)}


def node_files(data: DataDir) -> list[Path]:
    """The data folder's files other than the database, its aside copies and the socket."""
    skip = {data.database.name, data.database.name + ".wal", data.admin_socket.name}
    found = []
    for path in sorted(data.root.rglob("*")):
        rel = path.relative_to(data.root)
        if path.is_dir() or rel.parts[0] in skip or rel.parts[0].startswith(DATABASE + "."):
            continue
        if path.name.endswith(".tmp") or path.is_socket():
            continue
        found.append(rel)
    return found


def copy_private(src: Path, dst: Path) -> None:
    """Copy one file, created 0600 in folders made 0700 (never briefly readable by others)."""
    for parent in reversed(dst.parents):
        if not parent.exists():
            make_private_dir(parent)
    tmp = dst.with_name(dst.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out, src.open("rb") as f:
        shutil.copyfileobj(f, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(dst)


def add_node_files(data: DataDir, folder: Path) -> int:
    files = node_files(data)
    for rel in files:
        copy_private(data.root / rel, folder / NODE / rel)
    return len(files)


def table_counts(path: Path) -> dict[str, int]:
    """Open a database read-only, read every table in full, and count each table's rows."""
    store = Store(path, read_only=True, check=True)
    try:
        tables = [r[0] for r in store.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "ORDER BY table_name").fetchall()]  # fmt: skip
        counts = {}
        for t in tables:
            row = store.con.execute(f'SELECT count(*) FROM "{t}"').fetchone()  # noqa: S608 -- catalogue names
            counts[t] = int(row[0]) if row else 0
        return counts
    finally:
        store.close()


def write_manifest(data: DataDir, folder: Path, counts: dict[str, int]) -> None:
    """What the backup holds, and each node file's mode (public ones go back 0644)."""
    ids = data.collector_id_file
    modes = {str(rel): (data.root / rel).stat().st_mode & 0o777 for rel in node_files(data)}
    manifest = {"made_ms": now_ms(), "collector_id": ids.read_text().strip() if ids.exists()
                else "", "rows": counts, "modes": modes}  # fmt: skip
    fd = os.open(folder / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(manifest, f, indent=1)


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not (folder / DATABASE).exists() or not path.exists():
        raise BackupError(f"{folder} is not a collector backup (no {DATABASE} and {MANIFEST}); "
                          "give the folder `safeguard-collector backup --to` made")  # fmt: skip
    return dict(json.loads(path.read_text()))


def _not_in_use(data: DataDir) -> None:
    """Refuse if a process holds the database (a collector without its admin socket); a
    damaged one, which cannot be opened at all, may be replaced."""
    if not data.database.exists():
        return
    try:
        Store(data.database, read_only=True).close()
    except DatabaseError as exc:
        if "in use" in str(exc):
            raise BackupError(f"{exc}; stop it before restoring") from None


def restore(data: DataDir, folder: Path) -> dict[str, Any]:
    """Put the backup in place. The caller has checked that no collector is running."""
    manifest = read_manifest(folder)
    counts = table_counts(folder / DATABASE)  # refuses a damaged backup before anything moves
    if data.collector_id_file.exists():
        ours = data.collector_id_file.read_text().strip()
        if manifest["collector_id"] and ours != manifest["collector_id"]:
            raise BackupError(
                f"{folder} is a backup of another collector ({manifest['collector_id']}, this "
                f"one is {ours}); restore it into a new, empty --data folder instead"
            )
    _not_in_use(data)
    make_private_dir(data.root)
    copied = 0
    node = folder / NODE
    for src in sorted(node.rglob("*")) if node.exists() else []:
        dst = data.root / src.relative_to(node)
        if src.is_file() and not dst.exists():  # the node's own files are as new or newer
            copy_private(src, dst)
            dst.chmod(int(manifest.get("modes", {}).get(str(dst.relative_to(data.root)), 0o600)))
            copied += 1
    aside = None
    if data.database.exists():
        aside = data.database.with_name(f"{DATABASE}.before-restore-{now_ms()}")
        data.database.rename(aside)
        wal = data.database.with_name(DATABASE + ".wal")
        if wal.exists():
            wal.rename(aside.with_name(aside.name + ".wal"))
    copy_private(folder / DATABASE, data.database)
    store = Store(data.database)  # migrates a backup made by an older version
    try:
        added, revoked = enrolment.reconcile_journal(store, data)
        heads = store.list_agents()
    finally:
        store.close()
    log.warning("backup.restored from=%s aside=%s", folder, aside)
    return {"manifest": manifest, "rows": counts, "aside": aside, "node_files": copied,
            "enrolled_since": added, "revoked_since": revoked, "agents": heads}  # fmt: skip
