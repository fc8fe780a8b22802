"""Admin-socket operations for console accounts, incidents, retention and the roster, so the
CLI works whether or not the collector is running (see collector/operations.py). Each writes
an audit row naming the local user who ran it."""

from __future__ import annotations

import getpass
from typing import Any

from collector import accounts, policy, two_factor
from collector.console import config as console_config
from collector.incidents import config, coverage, queries
from collector.incidents.engine import Engine
from collector.integrity import audit
from collector.paths import DataDir
from collector.roster import book
from collector.roster import profiles as roster_profiles
from collector.storage import retention
from collector.storage.store import Store


def _audit(data: DataDir) -> audit.Audit:
    return audit.Audit(audit.load_key(data))


def _actor(args: dict[str, Any]) -> str:
    return f"cli:{args.get('by') or getpass.getuser()}"


def op_user_add(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    """`must_change` (default false here; the CLI always says) flags a temporary password."""
    must_change = bool(args.get("must_change", False))
    with store.transaction():
        acc = accounts.add(
            store,
            args["username"],
            args.get("display_name", ""),
            args["role"],
            args["password"],
            must_change=must_change,
            created_by=_actor(args),
        )
        detail = f"role={acc.role}" + (" temporary" if must_change else "")
        out: dict[str, Any] = {"username": acc.username, "role": acc.role,
                               "must_change": must_change}  # fmt: skip
        # Set up now, for a script (shown this once only), unless the person will set it up
        # at their first login (the installer's first DSL: no one else sees their secret).
        if two_factor.needs(acc.role) and not args.get("enrol_at_login", False):
            secret, codes = two_factor.new_secret(), two_factor.new_recovery_codes()
            two_factor.enrol(store, acc.username, secret, codes)
            out.update(otpauth_uri=two_factor.uri(secret, acc.username), recovery_codes=codes)
            detail += " two_factor"
        _audit(data).append(store, _actor(args), "user_added", f"user:{acc.username}", detail)
    return out


def op_user_passwd(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    must_change = bool(args.get("must_change", False))
    reset = bool(args.get("reset_two_factor", False))
    with store.transaction():
        accounts.set_password(store, args["username"], args["password"], must_change=must_change)
        if reset:  # a lost phone and lost recovery codes: set up again at the next login
            two_factor.clear(store, args["username"])
        detail = " ".join(w for w, on in (("temporary", must_change),
                                           ("two_factor_cleared", reset)) if on)  # fmt: skip
        _audit(data).append(store, _actor(args), "password_set", f"user:{args['username']}",
                            detail)  # fmt: skip
    return {"username": args["username"], "must_change": must_change, "two_factor_reset": reset}


def op_user_disable(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    """From the server's own command line even the last DSL can be disabled (a failed install
    rolls its first DSL back this way); the console refuses that."""
    with store.transaction():
        done = accounts.disable(store, args["username"], keep_a_dsl=False)
        if done:
            _audit(data).append(store, _actor(args), "user_disabled", f"user:{args['username']}")
    return {"username": args["username"], "disabled": done}


def op_user_list(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    return accounts.listing(store.con)


def op_incidents(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    f = queries.Filters(status=args.get("status", "open"), severity=args.get("severity"))
    rows, total = queries.list_incidents(store.con, f)
    _audit(data).append(store, _actor(args), "view_list", "incidents", "cli")
    return {"total": total, "rows": rows}


def op_incidents_rerun(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    rules, _ = config.for_collector(data, console_config.load(data).rules_dir)
    result = coverage.rerun(Engine(rules, record_key=audit.load_key(data)), store)
    _audit(data).append(
        store,
        _actor(args),
        "incidents_rerun",
        "incidents",
        " ".join(f"{k}={v}" for k, v in result.items()),
    )
    return result


def op_retention(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    a = _audit(data)
    if args.get("events_days") or args.get("incidents_days"):
        now = retention.periods(store.con)
        retention.set_periods(
            store,
            a,
            _actor(args),
            int(args.get("events_days") or now.events_days),
            int(args.get("incidents_days") or now.incidents_days),
        )
    out: dict[str, Any] = dict(vars(retention.periods(store.con)))
    if args.get("purge"):
        out["purged"] = retention.purge(store, a, _actor(args))
    return out


def op_dpia_written(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    """`safeguard-collector dpia` wrote a pack: the audit log says who, from which settings."""
    _audit(data).append(store, _actor(args), "dpia_written", "dpia",
                        f"fingerprint={args['fingerprint']} folder={args['folder']}")  # fmt: skip
    return {}


def op_roster_import(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    """`text`: the MIS export; `accounts` (a directory export's text) or `naming` (a rule).
    With profiles following the year group switched on, the policy is published again."""
    result = book.import_csv(store, _audit(data), _actor(args), args["text"],
                             naming=args.get("naming"), directory=args.get("accounts"))  # fmt: skip
    out = vars(result)
    if roster_profiles.enabled(store.con):
        out["published"], out["publish_error"] = _republish(store, data)
    return out


def _republish(store: Store, data: DataDir) -> tuple[int | None, str]:
    return policy.publish_again(data, policy.approved_exemptions(store),
                                roster_profiles.assignments(store.con))  # fmt: skip


def op_roster_profiles(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    """Profiles following the year group: `on` true or false; publishes the policy again (with
    the roster's logins, or without them)."""
    changed = roster_profiles.set_enabled(store, _audit(data), _actor(args), bool(args["on"]))
    version, error = _republish(store, data)
    return {**roster_profiles.summary(store.con), "changed": changed, "published": version,
            "publish_error": error}  # fmt: skip


def op_roster_assignments(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    """The roster's login -> profile pairs for `policy publish` ([] when switched off)."""
    return roster_profiles.assignments(store.con)


def op_roster_show(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    """The roster's counts; `for_dpia`: only whether one is imported, for the DPIA pack (no
    names leave, so no audit row of a roster view)."""
    summary = book.summary(store.con)
    if args.get("for_dpia"):
        return {"imported": bool(summary["pupils"] or summary["staff"]),
                "profiles": roster_profiles.enabled(store.con)}  # fmt: skip
    _audit(data).append(store, _actor(args), "view_roster", "roster", "cli")
    return {**summary, "profiles": roster_profiles.summary(store.con)}


def op_audit_verify(store: Store, data: DataDir, args: dict[str, Any]) -> Any:
    return vars(_audit(data).verify(store.con))


OPERATIONS = {
    "user_add": op_user_add,
    "user_passwd": op_user_passwd,
    "user_disable": op_user_disable,
    "user_list": op_user_list,
    "incidents": op_incidents,
    "incidents_rerun": op_incidents_rerun,
    "retention": op_retention,
    "audit_verify": op_audit_verify,
    "dpia_written": op_dpia_written,
    "roster_import": op_roster_import,
    "roster_show": op_roster_show,
    "roster_profiles": op_roster_profiles,
    "roster_assignments": op_roster_assignments,
}
