"""Whose request is this? The peer's address, or behind a trusted reverse proxy the address
the proxy saw (X-Forwarded-For).

Only a proxy named in console.toml's `trusted_proxies` is believed: anyone else could write
any address into the header, and the login throttle counts failures per address. Proxies
append the address they received from, so the header is read from the right: the first
address that is not itself a trusted proxy is the client. Anything unreadable on the way
stops the walk at the proxy's own address (a client cannot choose an address to be counted
under).
"""

from __future__ import annotations

import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """Parse the setting ("10.0.0.5", "10.1.0.0/16", "::1"); ValueError names a bad one."""
    out = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"trusted_proxies: {entry!r} is not an IP address or network (e.g. 10.0.0.5 "
                "or 10.0.0.0/24)"
            ) from None
    return tuple(out)


def _trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client(peer: str | None, forwarded: str | None, trusted: tuple[Network, ...]) -> str:
    peer = peer or "?"
    if not forwarded or not _trusted(peer, trusted):
        return peer
    last = peer
    for hop in reversed(forwarded.split(",")[:20]):
        hop = hop.strip()
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return last
        if not _trusted(hop, trusted):
            return hop
        last = hop
    return last
