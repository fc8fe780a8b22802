"""The console's settings: DATA/console.toml, read once at start (all keys optional).

[console]
session_idle_minutes = 30
session_max_hours = 10
rules = "/etc/safeguard/policy"     # a policy folder (default: the packaged rules/lists)
silent_check_seconds = 60
clock_skew_minutes = 5              # a PC's clock further off than this is flagged
trusted_proxies = ["10.0.0.5"]      # reverse proxies whose X-Forwarded-For is believed

[notify]                            # see collector/reporting/notify.py

[school]                            # see collector/reporting/school_days.py
term_dates = ["2026-09-03:2026-10-23"]  # reports count school days only (never weekends)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.console import client_address
from collector.paths import DataDir
from collector.reporting.notify import NotifyConfig
from collector.reporting.school_days import Terms


@dataclass(frozen=True)
class ConsoleConfig:
    session_idle_minutes: int = 30
    session_max_hours: int = 10
    rules: str = ""
    silent_check_seconds: float = 60.0
    clock_skew_minutes: float = 5.0
    trusted_proxies: tuple[str, ...] = ()

    @property
    def clock_skew_limit_ms(self) -> int:
        return int(self.clock_skew_minutes * 60_000)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    terms: Terms = field(default_factory=Terms)

    @property
    def rules_dir(self) -> Path | None:
        return Path(self.rules) if self.rules else None


def path(data: DataDir) -> Path:
    return data.root / "console.toml"


def load(data: DataDir) -> ConsoleConfig:
    file = path(data)
    if not file.exists():
        return ConsoleConfig()
    try:
        doc: dict[str, Any] = tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{file}: {exc}") from None
    unknown = set(doc) - {"console", "notify", "school"}
    if unknown:
        raise ValueError(f"{file}: unknown sections {', '.join(sorted(unknown))}")
    head = dict(doc.get("console", {}))
    known = set(ConsoleConfig.__dataclass_fields__) - {"notify", "terms"}
    if set(head) - known:
        raise ValueError(f"{file}: [console] unknown keys {', '.join(sorted(set(head) - known))}")
    try:
        notify = NotifyConfig.from_table(dict(doc.get("notify", {})))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{file}: {exc}") from None
    terms = _terms(file, dict(doc.get("school", {})))
    proxies = head.pop("trusted_proxies", [])
    if not isinstance(proxies, list) or not all(isinstance(p, str) for p in proxies):
        raise ValueError(f'{file}: trusted_proxies is a list of addresses, e.g. ["10.0.0.5"]')
    try:
        client_address.networks(tuple(proxies))
    except ValueError as exc:
        raise ValueError(f"{file}: {exc}") from None
    return ConsoleConfig(**head, trusted_proxies=tuple(proxies), notify=notify, terms=terms)


def _terms(file: Path, school: dict[str, Any]) -> Terms:
    odd = sorted(set(school) - {"term_dates"})
    if odd:
        raise ValueError(f"{file}: [school] unknown keys {', '.join(odd)}")
    try:
        return Terms.parse(school.get("term_dates", []))
    except ValueError as exc:
        raise ValueError(f"{file}: [school] {exc}") from None
