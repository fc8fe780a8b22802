"""Why a TLS handshake with the collector failed, in words a technician acts on.

gRPC reports a failed handshake as UNAVAILABLE with BoringSSL's reason buried in its details
("... CERTIFICATE_VERIFY_FAILED: certificate is not yet valid"), and the shipper retries for
ever: without a word about the PC's clock, a PC days off would never say why it stopped
shipping. `safeguard-install doctor` makes the same diagnosis from its own handshake
(installer/checks.py).
"""

from __future__ import annotations

import datetime as dt


def explain_tls(details: str, address: str, now: dt.datetime | None = None) -> str | None:
    """The cause of a failed handshake named in ``details``, or None if it is not one."""
    clock = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    if "certificate is not yet valid" in details:
        return (f"the collector's certificate is not valid yet by this PC's clock ({clock}): "
                "the PC's clock is probably behind; set it (NTP) and shipping resumes")
    if "certificate has expired" in details:
        return (f"the collector's certificate has expired by this PC's clock ({clock}): either "
                "the PC's clock is ahead (set it, NTP), or the collector's certificate needs "
                "renewing on the collector")
    if any(s in details for s in ("BAD_SIGNATURE", "certificate signature failure",
                                  "unable to get local issuer", "self signed certificate")):
        return (f"the server at {address} is not this school's collector: its certificate is "
                "not signed by the CA this PC enrolled with (the wrong address, or a collector "
                "set up again: enrol this PC again)")
    if "Peer name" in details and "not in peer certificate" in details:
        return (f"the collector's certificate does not name {address.rpartition(':')[0]}: "
                "enrol the PC with a name the certificate holds")
    return None
