"""The one way the agent reaches its collector: gRPC over TLS pinned to the school's CA."""

from __future__ import annotations

import importlib
import ipaddress

import grpc

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # both ends agree on gRPC's default 4 MiB cap

# Keepalive spots a collector that vanished without closing the connection (a pulled cable).
# gRPC servers by default reject client pings more often than every 5 minutes when no data
# flows, so stay above that; heartbeats every minute keep data flowing anyway.
_KEEPALIVE_MS = 5 * 60 * 1000 + 10_000
_KEEPALIVE_TIMEOUT_MS = 20_000

_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", _KEEPALIVE_MS),
    ("grpc.keepalive_timeout_ms", _KEEPALIVE_TIMEOUT_MS),
    # Our own backoff decides when to retry; do not let the channel sit in a long reconnect.
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5_000),
]


# gRPC's blocking calls wake every 0.1 s so that a signal reaches a main thread waiting on them
# (grpc/grpc#19464). The agent's one long gRPC wait is the shipper's reader thread, which no
# signal concerns, and its ten wake-ups a second were the largest share of an idle agent's CPU
# (bench/results/agent.md). Set by the service only, whose main thread waits on no gRPC call
# (a command such as `enrol` keeps gRPC's 0.1 s and sees Ctrl-C at once).
GRPC_WAIT_S = 2.0


def quieter_grpc_waits() -> None:
    """Set gRPC's wait slice, for the whole process: the service calls it as it starts. The
    constant is private: if a release drops or renames it, nothing changes but the wake-ups
    (a test says so)."""
    try:
        common = importlib.import_module("grpc._common")
    except ImportError:
        return
    if isinstance(getattr(common, "MAXIMUM_WAIT_TIMEOUT", None), float):
        setattr(common, "MAXIMUM_WAIT_TIMEOUT", GRPC_WAIT_S)  # noqa: B010  # private: mypy knows no such name



def rpc_code(exc: grpc.RpcError) -> str:
    """The status code's name (UNAVAILABLE, ...), or the exception's for a call that never ran."""
    return exc.code().name if isinstance(exc, grpc.Call) else type(exc).__name__


def rpc_detail(exc: grpc.RpcError) -> str:
    return (exc.details() or "") if isinstance(exc, grpc.Call) else ""


class AddressError(ValueError):
    """A collector address that is not HOST:PORT."""


def parse_address(text: str) -> str:
    """Check HOST:PORT (IPv6 as [::1]:PORT) and return it in the form gRPC dials."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port:
        raise AddressError(f"collector address {text!r} is not HOST:PORT (e.g. collector:50051)")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise AddressError(f"collector address {text!r} has no valid port (1-65535)")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in bare:
        try:
            ipaddress.IPv6Address(bare)
        except ValueError:
            raise AddressError(f"collector address {text!r}: bad IPv6 host") from None
        host = f"[{bare}]"
    elif not bare or any(c.isspace() or c in "/@?#[]" for c in bare):
        raise AddressError(f"collector address {text!r} has no valid host name")
    return f"{host}:{int(port)}"


def secure_channel(address: str, ca_pem: bytes) -> grpc.Channel:
    """A channel that trusts only the pinned school CA (never the system roots)."""
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    return grpc.secure_channel(address, credentials, options=_OPTIONS)
