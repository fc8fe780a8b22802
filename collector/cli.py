"""safeguard-collector: set up, run and inspect a collector."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import uuid
from pathlib import Path
from typing import Any

from collector import admin, app, operations, pki, policy
from collector.paths import DataDir, make_private_dir
from collector.storage import backup, salvage
from collector.storage.store import DatabaseError, Store
from protos.skew import describe as describe_skew

log = logging.getLogger(__name__)

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class CliError(Exception):
    """A message for the technician; the command exits non-zero."""


def parse_duration(text: str) -> int:
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30m, 24h or 7d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _data(args: argparse.Namespace) -> DataDir:
    data = DataDir(Path(args.data).resolve())
    if args.command not in ("init",) and not data.is_initialised():
        raise CliError(_not_a_collector(data.root))
    return data


def _not_a_collector(root: Path) -> str:
    """Say what is wrong with a --data folder, and the likely right one."""
    found = [p for p in (root / "collector", root.parent) if DataDir(p).is_initialised()]
    if found:
        return f"{root} is not a collector data folder; did you mean --data {found[0]}?"
    if not root.exists():
        return f"{root} does not exist; make a collector there with `safeguard-collector init`"
    return (f"{root} is not a collector data folder (no collector.duckdb and ca.pem); "
            "give the folder `safeguard-collector init --data` made")


def cmd_init(args: argparse.Namespace) -> int:
    data = _data(args)
    if data.is_initialised():
        if args.exist_ok:
            print(f"{data.root} is already initialised; nothing changed")
            return 0
        raise CliError(
            f"{data.root} is already initialised; nothing changed (use --exist-ok to accept that)"
        )
    if data.root.exists() and any(data.root.iterdir()):
        raise CliError(f"{data.root} exists and is not empty; choose a new folder")
    make_private_dir(data.root)
    names = args.name or pki.default_names()
    pki.create(data, args.school, names)
    data.collector_id_file.write_text(str(uuid.uuid4()) + "\n")
    make_private_dir(data.policy_dir)
    Store(data.database).close()
    published = policy.publish(data)  # monitoring is on from the first agent's first connection
    print(f"initialised collector in {data.root}")
    print(f"  policy: the shipped rules, published as version {published.version}")
    print(f"  CA certificate for agents: {data.ca_cert}")
    print(f"  TLS names: {', '.join(names)}")
    return 0


def _ask(data: DataDir, op: str, op_args: dict[str, Any], timeout: float = 120.0) -> Any:
    """Through the running collector if there is one, else straight from the database."""
    if data.admin_socket.exists():
        try:
            return admin.request(data.admin_socket, op, op_args, timeout)
        except (ConnectionRefusedError, FileNotFoundError):
            pass  # a socket left behind by a collector that was killed
        except admin.AdminError as exc:
            raise CliError(str(exc)) from None
    store = Store(data.database)
    try:
        return operations.run(store, data, op, op_args)
    finally:
        store.close()


def cmd_token(args: argparse.Namespace) -> int:
    data = _data(args)
    try:
        result = _ask(data, "token", {"ttl_s": args.ttl, "uses": args.uses, "note": args.note})
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.format == "json":
        print(json.dumps(result))
    else:
        print(result["token"])
    return 0


def cmd_agents(args: argparse.Namespace) -> int:
    rows = _ask(_data(args), "agents", {})
    if args.format == "json":
        print(json.dumps(rows, indent=1))
        return 0
    print(
        f"{'AGENT':25} {'HOST':20} {'VERSION':8} {'LAST SEEN (UTC)':20} {'SEQ':>8}  HEAD     STATE"
    )
    for r in rows:
        seen = _when(r["last_seen_ms"])
        state = "revoked" if r["revoked_ms"] else "active"
        if r.get("clock_skewed"):
            state += (f", clock {describe_skew(r['clock_skew_ms'])} (measured "
                      f"{_when(r['clock_measured_ms'])}: set the PC's clock, NTP)")  # fmt: skip
        print(
            f"{r['agent_id']:25} {r['hostname'][:20]:20} {r['version'][:8]:8} {seen:20} "
            f"{r['last_seq']:>8}  {(r['head_hash'] or '')[:8].lower()} {state}"
        )
    return 0


def _when(ms: int | None) -> str:
    import datetime as dt

    if not ms:
        return "never"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def cmd_rotate_cert(args: argparse.Namespace) -> int:
    data = _data(args)
    cert = pki.rotate(data)
    print(f"renewed {data.server_cert} (valid until {cert.not_valid_after_utc:%Y-%m-%d}; the old "
          f"pair kept as *.old): restart the collector (systemctl restart safeguard-collector) "
          "to use it; PCs trust the school's CA, so none needs enrolling again")  # fmt: skip
    log.info("collector.certificate_rotated until=%s", cert.not_valid_after_utc.date())
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    result = _ask(_data(args), "revoke", {"agent_id": args.agent, "reason": args.reason})
    if not result["revoked"]:
        raise CliError(f"no active agent {args.agent!r}")
    print(f"revoked {args.agent}")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    rows = _ask(_data(args), "events", {"agent_id": args.agent, "limit": args.limit})
    for r in rows:
        if args.format == "json":
            print(json.dumps(r))
        else:
            e = r["event"]
            kind = next((k for k in e if k not in _EVENT_FIELDS), "?")
            print(
                f"{r['agent_id']} #{r['seq']:<6} {_when(int(e.get('observed_unix_ms', 0)))} "
                f"sev={e.get('severity', 0)} {kind:10} id={e.get('event_id', '')} "
                f"chain={r['chain']}"
            )
    return 0


_EVENT_FIELDS = {"seq", "observed_unix_ms", "severity", "account", "event_id"}


def cmd_tampering(args: argparse.Namespace) -> int:
    rows = _ask(_data(args), "tampering", {"agent_id": args.agent})
    if not rows and args.format == "text":
        print("no tampering records")
    for r in rows:
        print(
            json.dumps(r)
            if args.format == "json"
            else f"{r['id']:5} {r['agent_id']} {r['kind']:14} seq {r['first_seq']}..{r['last_seq']}"
            f" {_when(r['detected_ms'])}  {r['detail']}"
        )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    data = _data(args)
    parts = _ask(data, "verify", {"heads": args.head or []}, timeout=24 * 3600)
    if args.format == "json":
        print(json.dumps(parts, indent=1))
    else:
        for part in parts:
            print(f"{'ok    ' if part['ok'] else 'FAILED'} {part['name']}: {part['checked']}")
            for fault in part["faults"]:
                print(f"         {fault}")
    failed = [p["name"] for p in parts if not p["ok"]]
    if failed and args.format == "text":
        print(f"verify: faults in {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def cmd_acknowledge_restore(args: argparse.Namespace) -> int:
    result = _ask(_data(args), "acknowledge_restore", {"reason": args.reason})
    print(f"recorded in the audit log: restore acknowledged ({args.reason})")
    print(f"  the checkpoint was: {result['checkpoint_was']}")
    print(f"  the chains are now: {result['chains_now']}")
    for problem in result["problems"]:
        print(f"  accepted: {problem}")
    print("a new checkpoint is taken; the console's warning clears within a minute")
    return 0


def _refuse_while_serving(data: DataDir, what: str) -> None:
    if data.admin_socket.exists():
        try:
            admin.request(data.admin_socket, "count", {}, timeout=10)
        except (ConnectionRefusedError, FileNotFoundError):
            return  # a socket left behind by a collector that was killed
        except admin.AdminError:
            pass
        raise CliError(f"the collector is running on {data.root}; stop it first "
                       f"(systemctl stop safeguard-collector), then {what}")  # fmt: skip


def cmd_recover(args: argparse.Namespace) -> int:
    data = _data(args)
    _refuse_while_serving(data, "run recover again")
    try:
        Store(data.database, check=True).close()
        print(f"{data.database} opens cleanly and every table reads in full; nothing to recover")
        return 0
    except DatabaseError as exc:
        if "in use" in str(exc):
            raise
    result = salvage.recover(data)
    print(f"kept the damaged database aside, untouched: {result.aside}")
    if not result.opened:
        print(f"nothing of it could be read ({result.why_not});")
        print(f"started a new database with {result.agents} enrolled agents from "
              f"{data.agents_journal}")  # fmt: skip
    for t in result.tables:
        held = f", {t.held_back:,} held back past a lost stretch" if t.held_back else ""
        print(f"  {t.name}: {t.copied:,} rows salvaged, {t.lost:,} lost{held}")
    if result.unattributed:
        print(f"  {result.unattributed:,} lost event rows could not be tied to a PC; if their PC "
              "still holds them it does not know to send them")  # fmt: skip
    for h in result.heads:
        if h.before is not None and h.before == h.after:
            continue
        was = "unknown" if h.before is None else f"{h.before:,}"
        print(f"  agent {h.agent_id}: head set to seq {h.after:,} (was {was}; {h.lost:,} of its "
              "events lost)")  # fmt: skip
    print("start the collector: each PC sends again what it still holds after the head it is "
          "told; what a PC no longer holds is only in the file kept aside")  # fmt: skip
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    data = _data(args)
    folder = Path(args.to).resolve()
    if folder.is_relative_to(data.root):
        raise CliError(f"put the backup outside the data folder {data.root} (another disk, "
                       "ideally)")  # fmt: skip
    try:
        _ask(data, "backup", {"to": str(folder)}, timeout=BACKUP_TIMEOUT_S)
        files = backup.add_node_files(data, folder)
        counts = backup.table_counts(folder / backup.DATABASE)
    except backup.BackupError as exc:
        raise CliError(str(exc)) from None
    backup.write_manifest(data, folder, counts)
    print(f"backed up {data.root} to {folder} (the database and {files} node files: keys, "
          "certificates, policy, enrolment journal; keep it as secret as the data folder)")
    print("checked: the backup opens and every table reads in full; "
          + ", ".join(f"{n} {c:,}" for n, c in counts.items() if c))  # fmt: skip
    return 0


BACKUP_TIMEOUT_S = 6 * 3600  # the running collector copies the database before it answers


def cmd_restore(args: argparse.Namespace) -> int:
    data = DataDir(Path(args.data).resolve())
    _refuse_while_serving(data, "restore")
    try:
        result = backup.restore(data, Path(args.source).resolve())
    except backup.BackupError as exc:
        raise CliError(str(exc)) from None
    made = _when(result["manifest"].get("made_ms"))
    print(f"restored {data.database} from the backup made {made} UTC: "
          + ", ".join(f"{n} {c:,}" for n, c in result["rows"].items() if c))  # fmt: skip
    if result["aside"]:
        print(f"the database it replaced is kept aside: {result['aside']}")
    if result["node_files"]:
        print(f"{result['node_files']} node files (keys, certificates, policy) came from the "
              "backup; those already here were kept")  # fmt: skip
    for what in ("enrolled", "revoked"):
        if ids := result[f"{what}_since"]:
            print(f"{len(ids)} agents {what} since the backup (from {data.agents_journal}): "
                  f"{', '.join(ids)}")  # fmt: skip
    print("start the collector: each PC is told the head this database holds and sends again "
          "the events it still holds after it (PCs keep acknowledged events for a while); "
          "what a PC no longer holds is recorded against it as a gap")  # fmt: skip
    return 0


def cmd_policy_publish(args: argparse.Namespace) -> int:
    from rules.schema import PolicyError

    try:
        data = _data(args)
        approved = _ask(data, "exemptions_approved", {})
        assign = [tuple(pair) for pair in _ask(data, "roster_assignments", {})]
        published = policy.publish(data, Path(args.rules) if args.rules else None, approved,
                                   assign)  # fmt: skip
    except PolicyError as exc:
        raise CliError(f"policy not published: {exc}") from None
    print(f"published policy version {published.version} ({published.size} bytes) "
          f"as {published.path}; connected agents fetch it after their next acknowledged "
          "batch (a heartbeat, 60 s, at the latest), others when they connect")
    return 0


def cmd_policy_show(args: argparse.Namespace) -> int:
    version = policy.current_version(_data(args))
    print(f"current policy version: {version}" if version else "no policy published yet")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from collector.console import config as console_config

    data = _data(args)
    try:  # read before anything starts, so a mistake in it is one sentence, not a traceback
        console_config.load(data)
    except ValueError as exc:
        raise CliError(f"{exc}; mend console.toml, then start the collector again") from None

    def ready(running: app.Running) -> None:
        host = args.listen.rsplit(":", 1)[0]
        print(
            f"collector ready: gRPC/TLS on {host}:{running.port}, data in {data.root}", flush=True
        )
        if running.web is not None:
            scheme = "https" if running.web.tls else "http"
            web_host = args.web.rpartition(":")[0]
            print(f"console: {scheme}://{web_host}:{running.web.port}/", flush=True)

    app.serve_forever(data, args.listen, ready, args.web, args.web_tls, args.verifiers)
    return 0


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """The password, and whether it is temporary: one read from a file or standard input was
    made by someone or something other than its owner (the installer, a script), so its owner
    must change it at first login; one typed at the prompt is taken as chosen by the person
    typing it. --must-change / --no-must-change say otherwise."""
    if args.password_file == "-":  # noqa: S105 -- "-" means stdin, not a password
        password, temporary = sys.stdin.readline().rstrip("\n"), True
    elif args.password_file:
        password, temporary = Path(args.password_file).read_text().rstrip("\n"), True
    else:
        import getpass

        password = getpass.getpass("Password (at least 12 characters): ")
        if password != getpass.getpass("Again: "):
            raise CliError("the passwords do not match")
        temporary = False
    return password, temporary if args.must_change is None else args.must_change


def cmd_user(args: argparse.Namespace) -> int:
    data = _data(args)
    if args.action == "list":
        for r in _ask(data, "user_list", {}):
            state = "disabled" if r["disabled_ms"] else "active"
            if r["must_change_password"] and not r["disabled_ms"]:
                state = "temporary"  # must choose a new password at the next login
            print(f"{r['username']:20} {r['role']:11} {state:9} {r['display_name']}")
        return 0
    if not args.username:
        raise CliError(f"user {args.action} needs a USERNAME")
    op_args: dict[str, Any] = {"username": args.username}
    if args.action == "add":
        if not args.role:
            raise CliError("user add needs --role (dsl, deputy_dsl, head, technician, governor)")
        name = args.name or args.username
        password, temporary = _password(args)
        op_args.update(role=args.role, display_name=name, password=password, must_change=temporary,
                       enrol_at_login=args.enrol_at_login)  # fmt: skip
    elif args.action == "passwd":
        op_args["password"], op_args["must_change"] = _password(args)
        op_args["reset_two_factor"] = args.reset_two_factor
    elif args.reset_two_factor:
        raise CliError("--reset-two-factor goes with user passwd")
    try:
        result = _ask(data, f"user_{args.action}", op_args)
    except ValueError as exc:  # the password rules, an unknown or existing user (no socket)
        raise CliError(str(exc)) from None
    if args.action == "disable" and not result["disabled"]:
        print(f"disable: {args.username} was already disabled")
        return 0
    note = " (must choose a new password at the next login)" if result.get("must_change") else ""
    if result.get("two_factor_reset"):
        note += " (two-factor cleared: set up again at the next login)"
    print(f"{args.action}: {args.username}{note}")
    if result.get("otpauth_uri"):  # shown once: the collector keeps no copy it can show again
        print("two-factor sign-in (add to an authenticator app; shown this once only):")
        print(f"otpauth URI: {result['otpauth_uri']}")
        print("recovery codes (each works once):", " ".join(result["recovery_codes"]))
    return 0


def cmd_incidents(args: argparse.Namespace) -> int:
    data = _data(args)
    if args.rerun:
        result = _ask(data, "incidents_rerun", {})
        print(f"rebuilt untriaged candidates: {result['removed']} removed, {result['events']} "
              f"events read, {result['candidates']} candidates now")  # fmt: skip
        return 0
    result = _ask(data, "incidents", {"status": args.status, "severity": args.severity})
    if args.format == "json":
        print(json.dumps(result, indent=1, default=str))
        return 0
    for r in result["rows"]:
        print(
            f"#{r['id']:<6} sev={r['severity']} {r['category'][:14]:14} {r['status']:9} "
            f"{_when(r['last_ms'])} {r['hostname'][:16]:16} events={r['event_count']}"
        )
    print(f"{result['total']} candidates ({args.status or 'all'}); details in the console")
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    op_args = {"events_days": args.events and args.events // 86400,
               "incidents_days": args.incidents and args.incidents // 86400,
               "purge": args.purge}  # fmt: skip
    result = _ask(_data(args), "retention", op_args)
    print(f"events kept {result['events_days']} days; closed incidents kept "
          f"{result['incidents_days']} days")  # fmt: skip
    if "purged" in result:
        print(f"purged {result['purged']['events']} events and "
              f"{result['purged']['incidents']} closed incidents (logged in the audit log)")
    return 0


def _read_csv(path: str, what: str) -> str:
    from collector.roster.mis_csv import decode

    try:
        return decode(Path(path).read_bytes())
    except OSError as exc:
        raise CliError(f"cannot read the {what} {path}: {exc.strerror}.") from None


def cmd_roster(args: argparse.Namespace) -> int:
    from collector.roster.mis_csv import RosterFileError

    data = _data(args)
    if args.action == "profiles":
        return _roster_profiles(data, args.switch == "on")
    if args.action == "show":
        got = _ask(data, "roster_show", {})
        last = got["last"]
        print(f"{got['pupils']} pupils, {got['staff']} staff, {got['left']} left (kept until "
              "retention purges them)")  # fmt: skip
        print("profiles follow the year group: " + (
            f"on ({got['profiles']['assigned']} roster logins given a profile)"
            if got["profiles"]["on"] else "off"))  # fmt: skip
        if last:
            print(f"last import {_when(last['at_ms'])} by {last['by']}: {len(last['unmatched'])} "
                  f"unmatched, {len(last['duplicates'])} duplicates")  # fmt: skip
        return 0
    op_args = {"text": _read_csv(args.file, "MIS export"), "naming": args.naming,
               "accounts": args.accounts and _read_csv(args.accounts, "accounts file")}  # fmt: skip
    size = len(json.dumps(op_args))
    if size > admin.MAX_REQUEST - 1024:  # the collector would close the socket mid-request
        raise CliError(f"the files are {size // 1024} KiB together; the most a roster import "
                       f"takes is {admin.MAX_REQUEST // 1024 - 1} KiB. Export only the columns "
                       "needed (names, year, class, UPN; account name, names, employeeID).")
    try:
        r = _ask(data, "roster_import", op_args)
    except RosterFileError as exc:  # straight from the database (no collector running)
        raise CliError(f"{args.file}: {exc}") from None
    except CliError as exc:
        raise CliError(f"{args.file}: {exc}") from None
    print(f"{r['rows']} rows: {r['added']} added, {r['updated']} updated, {r['unchanged']} "
          f"unchanged, {r['returned']} back from left; {r['left']} not in this file marked "
          "left")  # fmt: skip
    _said_published(r)
    for line in r["unmatched"]:
        print(f"unmatched: {line}")
    for line in r["duplicates"]:
        print(f"duplicate account {line}")
    if r["unmatched"] or r["duplicates"]:
        print(
            f"{len(r['unmatched'])} unmatched and {len(r['duplicates'])} duplicate rows were "
            "not imported: fix the accounts file or the naming rule and import again."
        )
        return 2
    return 0


def _said_published(r: dict[str, Any]) -> None:
    """What a roster change did to the policy, when profiles follow the year group."""
    if r.get("published"):
        print(f"published policy version {r['published']} with each login's profile from the "
              "roster; PCs fetch it after their next acknowledged batch")  # fmt: skip
    elif r.get("publish_error"):
        print(f"warning: {r['publish_error']}; mend the policy and run `safeguard-collector "
              "policy publish`", file=sys.stderr)  # fmt: skip


def _roster_profiles(data: DataDir, on: bool) -> int:
    r = _ask(data, "roster_profiles", {"on": on})
    if on:
        print(f"profiles now follow the year group: {r['assigned']} logins from the roster "
              "(Nursery to Y2: ks1, Y3 to Y6: ks2, staff: staff). Every PC receives these login "
              "names with their profile, and nothing else of the roster; update the DPIA pack "
              "(safeguard-collector dpia).")  # fmt: skip
    else:
        print("profiles no longer follow the year group: the policy names no roster logins; "
              "PCs use their local groups and the default profile again.")  # fmt: skip
    _said_published(r)
    return 1 if r.get("publish_error") else 0


def cmd_dpia(args: argparse.Namespace) -> int:
    from collector.console import config as console_config
    from collector.privacy import dpia
    from collector.privacy.dpia_settings import DpiaError
    from collector.storage.retention import Periods

    data = _data(args)
    got = _ask(data, "retention", {})
    try:
        notify = console_config.load(data).notify
        shown = _ask(data, "roster_show", {"for_dpia": True})
        settings = dpia.gather(data, Periods(got["events_days"], got["incidents_days"]), notify,
                               bool(shown["imported"]), bool(shown.get("profiles")))  # fmt: skip
    except ValueError as exc:  # console.toml does not read
        raise CliError(f"{exc}; mend console.toml, then run dpia again") from None
    except DpiaError as exc:
        raise CliError(str(exc)) from None
    pack = dpia.build(settings, dpia.previous(data), dpia.now_text())
    out = Path(args.out).resolve() if args.out else dpia.default_folder(data)
    written = dpia.write(data, pack, out)
    _ask(data, "dpia_written", {"fingerprint": pack.fingerprint, "folder": str(out)})
    print(f"wrote the DPIA pack to {out}: {', '.join(p.name for p in written)} "
          f"(settings fingerprint {pack.fingerprint[:16]})")  # fmt: skip
    print(f"pupils' notice: {pack.readability.line()}")
    if pack.changed is None:
        print("the first pack from this collector: nothing to compare with")
    elif not pack.changed:
        print("no change since the last pack: the same settings")
    else:
        print("changed since the last pack:")
        for line in pack.changed:
            print(f"  - {line}")
    if not pack.readability.passed:
        print("safeguard-collector: warning: the pupils' notice is harder to read than KS2 "
              "pupils can; edit notice-pupils.md before giving it out", file=sys.stderr)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    result = _ask(_data(args), "audit_verify", {})
    if result["ok"]:
        print(f"audit log verified: {result['rows']} entries")
        return 0
    print(f"audit log BROKEN at entry {result['first_bad']}: {result['reason']}")
    return 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="safeguard-collector", description=__doc__)
    p.add_argument("--log-level", default="INFO")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_text)
        c.add_argument("--data", required=True, help="the collector's data folder")
        return c

    c = command("init", "create the CA, TLS certificate, policy key and database")
    c.add_argument("--school", default="School", help="name on the certificates")
    c.add_argument("--name", action="append", help="a host name or IP agents use (repeatable)")
    c.add_argument("--exist-ok", action="store_true", help="succeed if already initialised")
    c.set_defaults(func=cmd_init)
    c = command("rotate-cert", "renew the TLS server certificate from the school's CA "
                "(no PC needs enrolling again); restart serve to use it")
    c.set_defaults(func=cmd_rotate_cert)
    c = command("token", "print an enrolment token")
    c.add_argument("--ttl", type=parse_duration, default=parse_duration("24h"))
    c.add_argument("--uses", type=int, default=1, help="how many PCs may enrol with it")
    c.add_argument("--note", default="")
    c.add_argument("--format", choices=["text", "json"], default="text")
    c.set_defaults(func=cmd_token)
    c = command("serve", "run the collector")
    c.add_argument("--listen", default="127.0.0.1:50051")
    c.add_argument("--web", nargs="?", const="127.0.0.1:8080", metavar="HOST:PORT",
                   help="also serve the DSL console (default 127.0.0.1:8080)")  # fmt: skip
    c.add_argument("--web-tls", action=argparse.BooleanOptionalAction, default=None,
                   help="HTTPS with the collector's certificate (default: on unless loopback)")
    c.add_argument("--verifiers", type=int, default=app.DEFAULT_VERIFIERS, metavar="N",
                   help="processes that check batches' signatures and chains "
                   f"(default {app.DEFAULT_VERIFIERS}: one per core but one, up to 4)")
    c.set_defaults(func=cmd_serve)
    c = command("user", "console accounts: add, passwd, disable, list")
    c.add_argument("action", choices=["add", "passwd", "disable", "list"])
    c.add_argument("username", nargs="?")
    c.add_argument("--role", choices=["dsl", "deputy_dsl", "head", "technician", "governor"])
    c.add_argument("--name", help="the person's name as shown in the console")
    c.add_argument("--password-file", help="read the password from FILE, or - for stdin")
    c.add_argument(
        "--must-change",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="make the password temporary: it must be changed at the next console "
        "login (default: yes with --password-file, no when typed at the prompt)",
    )
    c.add_argument(
        "--enrol-at-login",
        action="store_true",
        help="add: no two-factor secret now; the person sets it up at their first console "
        "login (default: print its otpauth URI and recovery codes once, for set-up from a script)",
    )
    c.add_argument(
        "--reset-two-factor",
        action="store_true",
        help="passwd: also clear the account's two-factor secret and recovery codes (a lost "
        "phone and codes); the person sets it up again at their next login",
    )
    c.set_defaults(func=cmd_user)
    c = command("incidents", "list incident candidates, or rebuild them after a rule change")
    c.add_argument("--status", default="open", choices=["open", "new", "in_review", "closed", ""])
    c.add_argument("--severity", type=int, choices=[1, 2, 3, 4, 5])
    c.add_argument("--rerun", action="store_true", help="rebuild untriaged candidates")
    c.add_argument("--format", choices=["text", "json"], default="text")
    c.set_defaults(func=cmd_incidents)
    c = command("retention", "show or set retention periods; --purge applies them now")
    c.add_argument("--events", type=parse_duration, help="keep events this long, e.g. 365d")
    c.add_argument("--incidents", type=parse_duration, help="keep closed incidents, e.g. 2190d")
    c.add_argument("--purge", action="store_true")
    c.set_defaults(func=cmd_retention)
    ros = sub.add_parser("roster", help="the pupil roster: names, year and class from the "
                         "MIS, shown in the console beside login names")
    ros_sub = ros.add_subparsers(dest="action", required=True)
    c = ros_sub.add_parser("import", help="import an MIS export of pupils (SIMS, Arbor, "
                           "Bromcom CSV); pupils not in it are marked left")
    c.add_argument("--data", required=True, help="the collector's data folder")
    c.add_argument("file", metavar="FILE.csv", help="the MIS export of pupils")
    how = c.add_mutually_exclusive_group(required=True)
    how.add_argument("--accounts", metavar="MAP.csv", help="a directory export (AD or Entra: "
                     "sAMAccountName or userPrincipalName, givenName and sn or displayName, "
                     "employeeID optional) that says each pupil's login name")
    how.add_argument("--naming", metavar="RULE", help='how login names are made, e.g. '
                     '"{first}.{last}" (lower case, no spaces or apostrophes)')
    c.set_defaults(func=cmd_roster)
    c = ros_sub.add_parser("show", help="how many pupils, the last import and what it left out")
    c.add_argument("--data", required=True, help="the collector's data folder")
    c.set_defaults(func=cmd_roster)
    c = ros_sub.add_parser("profiles", help="on: each pupil's profile (KS1/KS2) follows the "
                           "roster's year group, and staff rows get the staff profile; PCs then "
                           "receive every login name with its profile (off by default)")
    c.add_argument("switch", choices=["on", "off"])
    c.add_argument("--data", required=True, help="the collector's data folder")
    c.set_defaults(func=cmd_roster)
    c = command("audit", "verify the console's hash-chained audit log")
    c.set_defaults(func=cmd_audit)
    c = command("dpia", "write the DPIA draft and the pupils', parents' and staff privacy "
                "notices from the live settings, saying what changed since the last pack")
    c.add_argument("--out", metavar="FOLDER",
                   help="where to write the Markdown files (default: DATA/dpia)")
    c.set_defaults(func=cmd_dpia)
    c = command("agents", "list enrolled agents")
    c.add_argument("--format", choices=["text", "json"], default="text")
    c.set_defaults(func=cmd_agents)
    c = command("revoke", "stop an agent from shipping")
    c.add_argument("agent")
    c.add_argument("--reason", default="revoked by technician")
    c.set_defaults(func=cmd_revoke)
    c = command("events", "print stored events, with their chain verified")
    c.add_argument("--agent")
    c.add_argument("--limit", type=int, default=100)
    c.add_argument("--format", choices=["text", "json"], default="text")
    c.set_defaults(func=cmd_events)
    c = command("verify", "check event chains and signatures, the audit log, incident records "
                "and the chains' checkpoints; exit 1 naming each fault")  # fmt: skip
    c.add_argument("--head", action="append", metavar="CHAIN:SEQ:HASH",
                   help="a checkpoint head copied from an export or report (repeatable)")
    c.add_argument("--format", choices=["text", "json"], default="text")
    c.set_defaults(func=cmd_verify)
    c = command("acknowledge-restore", "record in the audit log that a restore from backup "
                "was made on purpose, and take a new checkpoint")  # fmt: skip
    c.add_argument("--reason", required=True, help="why, for the audit log")
    c.set_defaults(func=cmd_acknowledge_restore)
    c = command("tampering", "print tampering records")
    c.add_argument("--agent")
    c.add_argument("--format", choices=["text", "json"], default="text")
    c.set_defaults(func=cmd_tampering)
    pol = sub.add_parser("policy", help="publish and show signed policy bundles")
    pol_sub = pol.add_subparsers(dest="policy_command", required=True)
    c = pol_sub.add_parser("publish", help="validate, sign and publish a policy folder")
    c.add_argument("--data", required=True, help="the collector's data folder")
    c.add_argument("--rules", help="policy folder (default: the policy shipped in rules/lists)")
    c.set_defaults(func=cmd_policy_publish)
    c = pol_sub.add_parser("show", help="print the current policy version")
    c.add_argument("--data", required=True, help="the collector's data folder")
    c.set_defaults(func=cmd_policy_show)
    c = command("backup", "copy the database (consistently, also while serve runs) and the "
                "node's keys, certificates and policy into a new folder, and check the copy")
    c.add_argument("--to", required=True, help="a new folder for the backup (0700)")
    c.set_defaults(func=cmd_backup)
    c = command("restore", "put a backup in place (serve stopped); the current database is kept "
                "aside")
    c.add_argument("--from", dest="source", required=True, help="the folder `backup` made")
    c.set_defaults(func=cmd_restore)
    c = command("recover", "keep a damaged database aside and copy what still reads into a "
                "new one; PCs send the rest again")
    c.set_defaults(func=cmd_recover)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        return int(args.func(args))
    except (CliError, DatabaseError, admin.AdminError) as exc:
        print(f"safeguard-collector: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"safeguard-collector: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
