"""Run by `safeguard-install doctor` with an installed role's own Python (which has grpcio and
cryptography; the installer itself uses the standard library only):

    python probe.py HOST:PORT CA_FILE [TLS_NAME]

Prints one JSON object: whether a gRPC channel over TLS, trusting only CA_FILE, became ready
(as the agent's would), and the CA's validity window, for the clock check. Exit 0 either way;
the JSON says what happened.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # the answer is in our JSON, not core logs

import grpc
from cryptography import x509

READY_TIMEOUT_S = 5.0


def probe(target: str, ca_pem: bytes, tls_name: str) -> dict[str, object]:
    ca = x509.load_pem_x509_certificate(ca_pem)
    answer: dict[str, object] = {
        "ca_not_before": ca.not_valid_before_utc.timestamp(),
        "ca_not_after": ca.not_valid_after_utc.timestamp(),
    }
    options = [("grpc.ssl_target_name_override", tls_name)] if tls_name else []
    channel = grpc.secure_channel(
        target, grpc.ssl_channel_credentials(root_certificates=ca_pem), options=options
    )
    try:
        grpc.channel_ready_future(channel).result(timeout=READY_TIMEOUT_S)
        answer["grpc"] = "ok"
    except grpc.FutureTimeoutError:
        answer["grpc"] = f"no TLS gRPC channel to {target} within {READY_TIMEOUT_S:.0f}s"
    finally:
        channel.close()
    return answer


def main(argv: list[str]) -> int:
    target, ca_file = argv[0], Path(argv[1])
    print(json.dumps(probe(target, ca_file.read_bytes(), argv[2] if len(argv) > 2 else "")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
