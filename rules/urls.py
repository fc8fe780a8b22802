"""URL matching (domain with parent domains, prefix, pattern) and search-query extraction.

Pure: a URL string in, ``UrlResult`` out. A search query found in the URL goes through the
keyword matcher of the same profile, so ``bing.com/search?q=k1ll+myself`` alerts as typing
would. Malformed URLs give an empty result, never an exception.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rules.compile import Compiled
from rules.match import Alert, match_short
from rules.schema import SearchEngine, UrlRule

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)


@dataclass(frozen=True)
class UrlHit:
    category: str
    kind: str
    rule: str
    why: str
    suppressed: bool = False
    exemptions: tuple[str, ...] = ()


@dataclass(frozen=True)
class UrlResult:
    url: str
    host: str
    hits: tuple[UrlHit, ...] = ()
    engine: str | None = None
    query: str | None = None  # only set when the query matched a keyword
    alerts: tuple[Alert, ...] = field(default=())

    @property
    def matched(self) -> bool:
        return bool(self.hits or self.alerts)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def split_url(url: str) -> tuple[str, str, str] | None:
    """(host, path, query) in lower-case host form, or None if it is not a web URL."""
    url = url.strip()
    if not _SCHEME.match(url):
        url = "http://" + url
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        return None
    if not host or parts.scheme.lower() not in ("http", "https"):
        return None
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        host = host.lower()
    return host, parts.path or "/", parts.query


def parents(host: str) -> list[str]:
    """``a.b.example.com`` -> itself, ``b.example.com``, ``example.com``, ``com``."""
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def _host_matches(host: str, pattern: str) -> bool:
    if pattern.endswith(".*"):  # "google.*": that label followed by any suffix
        stem = pattern[:-2]
        labels = host.split(".")
        return any(".".join(labels[i:]).startswith(stem + ".") and
                   len(labels) - i - len(stem.split(".")) in (1, 2)
                   for i in range(len(labels)))  # fmt: skip
    return host == pattern or host.endswith("." + pattern)


class UrlMatcher:
    def __init__(self, compiled: Compiled) -> None:
        self.c = compiled
        cats = set(compiled.profile.url_categories)
        rules = [r for r in compiled.policy.urls if r.category in cats]
        self._domains: dict[str, list[UrlRule]] = {}
        for r in rules:
            if r.kind == "domain":
                self._domains.setdefault(r.value, []).append(r)
        self._prefixes = [r for r in rules if r.kind == "prefix"]
        self._patterns = [(re.compile(r.value), r) for r in rules if r.kind == "pattern"]
        self._engines = compiled.policy.search_engines

    def match(self, url: str) -> UrlResult:
        split = split_url(url)
        if split is None:
            return UrlResult(url, "")
        host, path, query = split
        found: list[UrlRule] = []
        for name in parents(host):
            found.extend(self._domains.get(name, ()))
        bare = host.removeprefix("www.") + path + ("?" + query if query else "")
        found.extend(r for r in self._prefixes if bare.startswith(r.value) or
                     (host + path).startswith(r.value))  # fmt: skip
        found.extend(r for rx, r in self._patterns if rx.search(url))
        exempt = [e.id for e in self.c.exemptions if any(
            _host_matches(host, s) for s in e.sites)]  # fmt: skip
        hits = tuple(UrlHit(r.category, r.kind, r.value, r.why, bool(exempt), tuple(exempt))
                     for r in found)  # fmt: skip
        engine, q = search_query(self._engines, host, path, query)
        alerts = tuple(match_short(self.c, q)) if q else ()
        return UrlResult(url, host, hits, engine if alerts else None, q if alerts else None,
                         alerts)  # fmt: skip


def search_query(engines: tuple[SearchEngine, ...], host: str, path: str,
                 query: str) -> tuple[str | None, str | None]:  # fmt: skip
    """The engine and search text a URL carries, if any."""
    if not query:
        return None, None
    for eng in engines:
        if not any(_host_matches(host, h) for h in eng.hosts):
            continue
        if not any(path == p or path.startswith(p.rstrip("/") + "/") or p == "/"
                   for p in eng.paths):  # fmt: skip
            continue
        try:
            params = parse_qs(query, keep_blank_values=False, max_num_fields=200)
        except ValueError:
            return None, None
        for key in eng.params:
            if params.get(key):
                return eng.name, params[key][0]
    return None, None
