"""Numbered DuckDB migrations. Append a new step; never edit one that has shipped."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the signed pipeline: agents, enrolment tokens, events, the batches that signed them,
    # and tampering records (each a future incident candidate).
    """
    CREATE TABLE agents (
        agent_id      VARCHAR PRIMARY KEY,
        public_key    BLOB NOT NULL,
        hostname      VARCHAR NOT NULL,
        os            VARCHAR NOT NULL,
        version       VARCHAR NOT NULL,
        token_id      VARCHAR NOT NULL,
        enrolled_ms   BIGINT NOT NULL,
        revoked_ms    BIGINT,
        revoked_reason VARCHAR,
        last_seen_ms  BIGINT,
        last_seq      UBIGINT NOT NULL DEFAULT 0,
        head_hash     BLOB NOT NULL
    );
    CREATE TABLE tokens (
        token_id     VARCHAR PRIMARY KEY,
        secret_hash  BLOB NOT NULL,
        created_ms   BIGINT NOT NULL,
        expires_ms   BIGINT NOT NULL,
        max_uses     INTEGER NOT NULL,
        uses         INTEGER NOT NULL DEFAULT 0,
        note         VARCHAR NOT NULL DEFAULT ''
    );
    CREATE TABLE events (
        agent_id     VARCHAR NOT NULL,
        seq          UBIGINT NOT NULL,
        event_id     VARCHAR NOT NULL,
        kind         VARCHAR NOT NULL,
        severity     UTINYINT NOT NULL,
        account      VARCHAR NOT NULL,
        observed_ms  BIGINT NOT NULL,
        received_ms  BIGINT NOT NULL,
        raw          BLOB NOT NULL,
        hash         BLOB NOT NULL
        -- No PRIMARY KEY: its index would live in memory and grow with every event. The single
        -- writer stores only seqs past the agent's stored head, which is what keeps (agent, seq)
        -- unique; tests count it.
    );
    CREATE TABLE batches (
        agent_id     VARCHAR NOT NULL,
        first_seq    UBIGINT NOT NULL,
        last_seq     UBIGINT NOT NULL,
        prev_hash    BLOB NOT NULL,
        head_hash    BLOB NOT NULL,
        nonce        BLOB NOT NULL,
        signature    BLOB NOT NULL,
        received_ms  BIGINT NOT NULL
    );
    CREATE SEQUENCE tampering_id;
    CREATE TABLE tampering (
        id           BIGINT PRIMARY KEY DEFAULT nextval('tampering_id'),
        agent_id     VARCHAR NOT NULL,
        kind         VARCHAR NOT NULL,
        detail       VARCHAR NOT NULL,
        first_seq    UBIGINT,
        last_seq     UBIGINT,
        detected_ms  BIGINT NOT NULL,
        evidence     BLOB
    );
    """,
]
