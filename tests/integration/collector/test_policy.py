"""Signed policy bundles: published by the collector, fetched by agents over TLS gRPC."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from collector import policy
from protos import envelope, ingest_pb2, ingest_pb2_grpc
from rules import bundle
from rules.load import DEFAULT_DIR
from rules.schema import PolicyError
from tests import agentsim
from tests.harness import CollectorHarness

pytestmark = pytest.mark.integration


def fetch(
    collector: CollectorHarness,
    agent_id: str,
    key: Ed25519PrivateKey,
    have: str = "",
    unix_ms: int | None = None,
) -> ingest_pb2.PolicyBundle:
    """FetchPolicy as an agent asks: signed with its key, stamped with its clock."""
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(collector.address, collector.ca_path))
    unix_ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    signature = key.sign(envelope.policy_request_payload(agent_id, have, unix_ms))
    return stub.FetchPolicy(ingest_pb2.PolicyRequest(
        agent_id=agent_id, have_version=have, unix_ms=unix_ms, signature=signature))  # fmt: skip


def test_a_published_bundle_reaches_an_agent_and_verifies_with_the_enrolled_key(
    collector: CollectorHarness,
) -> None:
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(collector.address, collector.ca_path))
    agent_id, agent_key = agentsim.enrol(stub, collector.new_token())
    assert fetch(collector, agent_id, agent_key).bundle == b""  # nothing published yet
    assert policy.publish(collector.data).version == 1
    got = fetch(collector, agent_id, agent_key)
    key = Ed25519PublicKey.from_public_bytes(collector.data.policy_pub.read_bytes())
    verified = bundle.verify_bundle(got.bundle, key)
    assert got.version == "1" and verified.version == 1
    assert "grooming" in {c.name for c in verified.policy.categories}
    assert fetch(collector, agent_id, agent_key, have="1").bundle == b""
    s = agentsim.Session(stub, agentsim.SimAgent(agent_id, agent_key))
    assert s.welcome.policy_version == "1"
    s.close()


def test_versions_only_go_up(collector: CollectorHarness) -> None:
    assert [policy.publish(collector.data).version for _ in range(3)] == [1, 2, 3]
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(collector.address, collector.ca_path))
    agent_id, agent_key = agentsim.enrol(stub, collector.new_token())
    assert fetch(collector, agent_id, agent_key, have="2").version == "3"


def test_a_broken_policy_is_not_published_and_says_where(
    collector: CollectorHarness, tmp_path: Path
) -> None:
    policy.publish(collector.data)
    broken = tmp_path / "rules"
    shutil.copytree(DEFAULT_DIR, broken)
    target = next((broken / "keywords").glob("*.toml"))
    target.write_text(target.read_text() + "\n[[entry]\nterm = \n")
    with pytest.raises(PolicyError, match=target.name):
        policy.publish(collector.data, broken)
    assert policy.current_version(collector.data) == "1"


def test_only_an_enrolled_agent_with_its_key_and_a_sane_clock_gets_the_policy(
    collector: CollectorHarness,
) -> None:
    policy.publish(collector.data)
    stub = ingest_pb2_grpc.CollectorStub(agentsim.channel(collector.address, collector.ca_path))
    agent_id, agent_key = agentsim.enrol(stub, collector.new_token())
    stranger = Ed25519PrivateKey.generate()

    def refused(*args: object, **kwargs: object) -> grpc.StatusCode:
        with pytest.raises(grpc.RpcError) as err:
            fetch(collector, *args, **kwargs)  # type: ignore[arg-type]
        return err.value.code()  # type: ignore[no-any-return]

    assert refused("ag-stranger", stranger) == grpc.StatusCode.UNAUTHENTICATED
    assert refused(agent_id, stranger) == grpc.StatusCode.UNAUTHENTICATED  # knows the id only
    an_hour_ago = time.time_ns() // 1_000_000 - 3_600_000
    assert refused(agent_id, agent_key, unix_ms=an_hour_ago) == grpc.StatusCode.FAILED_PRECONDITION
    assert fetch(collector, agent_id, agent_key).version == "1"
    collector.op("revoke", agent_id=agent_id)
    assert refused(agent_id, agent_key) == grpc.StatusCode.PERMISSION_DENIED
