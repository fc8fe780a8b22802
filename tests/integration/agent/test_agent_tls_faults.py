"""A PC whose TLS handshake fails says why (issue 15, finding 7): its clock behind or ahead of
the collector's certificate, or a server that is not this school's collector. Real handshakes:
the collector is restarted with a certificate that is not valid yet, has expired, or comes
from another school's CA."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from agent.identity import StateDir
from agent.outbox import Outbox
from agent.shipper import Shipper
from tests.harness import CollectorHarness, init_data

pytestmark = pytest.mark.integration
Ship = Callable[..., AbstractContextManager[tuple[Shipper, Outbox]]]


def reissue(collector: CollectorHarness, starts_in_days: float) -> None:
    """The collector's server certificate again, valid for one day from the given shift."""
    data = collector.data
    ca_key = serialization.load_pem_private_key(data.ca_key.read_bytes(), None)
    ca = x509.load_pem_x509_certificate(data.ca_cert.read_bytes())
    old = x509.load_pem_x509_certificate(data.server_cert.read_bytes())
    key = serialization.load_pem_private_key(data.server_key.read_bytes(), None)
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=starts_in_days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(ca.subject)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=1))
        .add_extension(old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
                       critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    data.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def tls_failure(state: StateDir, ship: Ship, caplog: pytest.LogCaptureFixture) -> str:
    """Run the shipper until it logs a failed handshake; return the cause it gave."""
    from tests.integration.agent.conftest import wait_until

    def said() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage().startswith("ship.tls_failed")]

    with caplog.at_level("ERROR", logger="agent.shipper"), ship(state):
        wait_until(lambda: bool(said()), what="ship.tls_failed in the log")
    return said()[0].getMessage()


@pytest.mark.parametrize(("shift", "cause"), [
    (10, "not valid yet by this PC's clock"),
    (-10, "has expired by this PC's clock"),
])  # fmt: skip
def test_a_certificate_outside_its_dates_is_blamed_on_the_clock(
    collector: CollectorHarness, state: StateDir, ship: Ship, caplog: pytest.LogCaptureFixture,
    shift: int, cause: str,
) -> None:
    collector.stop()
    reissue(collector, shift)
    collector.start()
    said = tls_failure(state, ship, caplog)
    assert cause in said and "NTP" in said


def test_a_server_of_another_school_is_named_as_the_wrong_collector(
    collector: CollectorHarness, state: StateDir, ship: Ship, caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    other = init_data(tmp_path / "other-school")  # its own CA
    collector.stop()
    shutil.copy(other.server_cert, collector.data.server_cert)
    shutil.copy(other.server_key, collector.data.server_key)
    collector.start()
    said = tls_failure(state, ship, caplog)
    assert "is not this school's collector" in said


@pytest.mark.parametrize(("shift", "said"), [
    (-10, "the server certificate expired on"),
    (10, "is not valid until"),
])  # fmt: skip
def test_the_collector_says_at_start_when_its_certificate_is_out_of_date(
    collector: CollectorHarness, caplog: pytest.LogCaptureFixture, shift: int, said: str,
) -> None:
    collector.stop()
    reissue(collector, shift)
    with caplog.at_level("WARNING", logger="collector.app"):
        collector.start()
    [record] = [r for r in caplog.records if r.getMessage().startswith("collector.certificate")]
    assert said in record.getMessage()


def test_a_certificate_near_its_end_is_warned_of_weeks_ahead(collector: CollectorHarness) -> None:
    from collector import pki

    end = x509.load_pem_x509_certificate(collector.data.server_cert.read_bytes())
    assert pki.certificate_warning(collector.data) is None  # a fresh one: years left
    weeks_before = end.not_valid_after_utc - dt.timedelta(days=20)
    assert "expires in 20 days" in (pki.certificate_warning(collector.data, weeks_before) or "")


def test_rotate_cert_renews_an_expired_certificate_and_pcs_ship_without_enrolling_again(
    collector: CollectorHarness, state: StateDir, ship: Ship,
) -> None:
    from collector import cli
    from protos import events_pb2
    from tests.integration.agent.conftest import wait_until

    collector.stop()
    reissue(collector, -10)  # expired: every PC's handshake fails
    assert cli.main(["rotate-cert", "--data", str(collector.data_dir)]) == 0
    renewed = x509.load_pem_x509_certificate(collector.data.server_cert.read_bytes())
    assert renewed.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    assert collector.data.server_cert.with_name(collector.data.server_cert.name + ".old").exists()
    collector.start()
    from agent.identity import load_identity

    box = Outbox.open(state.outbox, load_identity(state).agent_id)
    box.put(events_pb2.Event(severity=1, test_alert=events_pb2.TestAlert(note="after rotation")))
    with ship(state, box):
        wait_until(lambda: box.counts().pending + box.counts().unacked == 0, what="acked")
    assert collector.count() >= 1


def test_rotate_cert_run_as_root_leaves_the_files_to_the_service_account(tmp_path: Path) -> None:
    import os

    from collector import pki

    data = init_data(tmp_path / "collector")
    owner = 65534 if os.geteuid() == 0 else os.geteuid()  # nobody: the service account here
    for path in (data.server_key, data.server_cert):
        if os.geteuid() == 0:
            os.chown(path, owner, owner)
    pki.rotate(data)
    for path in (data.server_key, data.server_cert,
                 data.server_key.with_name(data.server_key.name + ".old")):  # fmt: skip
        assert path.stat().st_uid == owner, path
    assert data.server_key.stat().st_mode & 0o777 == 0o600
    assert not data.server_key.with_name(data.server_key.name + ".new").exists()
