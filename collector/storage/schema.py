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
    # 2: incident candidates and the DSL console (collector/incidents/, collector/console/):
    # candidates and the events that are their evidence, exempted matches (counted, shown),
    # agent health from heartbeats, the machine -> room/site/group map, console accounts, the
    # hash-chained audit log, follow-up actions, two-person referrals, exemption requests and
    # settings (retention periods, engine high-water marks).
    """
    CREATE SEQUENCE incident_id;
    CREATE TABLE incidents (
        id             BIGINT PRIMARY KEY DEFAULT nextval('incident_id'),
        kind           VARCHAR NOT NULL,   -- detection, usb, silent_agent, tampering, test
        category       VARCHAR NOT NULL,
        categories     VARCHAR NOT NULL,   -- every category seen, comma separated
        severity       UTINYINT NOT NULL,
        base_severity  UTINYINT NOT NULL,
        escalation     VARCHAR NOT NULL DEFAULT '',
        agent_id       VARCHAR NOT NULL,
        account        VARCHAR NOT NULL,
        first_ms       BIGINT NOT NULL,
        last_ms        BIGINT NOT NULL,
        created_ms     BIGINT NOT NULL,
        updated_ms     BIGINT NOT NULL,
        event_count    INTEGER NOT NULL DEFAULT 0,
        summary        VARCHAR NOT NULL,
        status         VARCHAR NOT NULL DEFAULT 'new',
        outcome        VARCHAR NOT NULL DEFAULT '',
        outcome_note   VARCHAR NOT NULL DEFAULT '',
        closed_by      VARCHAR NOT NULL DEFAULT '',
        closed_ms      BIGINT,
        triaged        BOOLEAN NOT NULL DEFAULT false,
        notified_ms    BIGINT
    );
    CREATE TABLE incident_signals (
        incident_id  BIGINT NOT NULL,
        agent_id     VARCHAR NOT NULL,
        seq          UBIGINT,              -- NULL for silent agents and tampering
        account      VARCHAR NOT NULL,
        observed_ms  BIGINT NOT NULL,
        source       VARCHAR NOT NULL,     -- keyword, url, usb, tampering, silent, test
        category     VARCHAR NOT NULL,
        severity     UTINYINT NOT NULL,
        exemption    VARCHAR NOT NULL DEFAULT '',
        tampering_id BIGINT
    );
    CREATE TABLE exempted_matches (
        agent_id     VARCHAR NOT NULL,
        seq          UBIGINT NOT NULL,
        account      VARCHAR NOT NULL,
        observed_ms  BIGINT NOT NULL,
        category     VARCHAR NOT NULL,
        exemption    VARCHAR NOT NULL,
        incident_id  BIGINT
    );
    CREATE TABLE agent_health (
        agent_id        VARCHAR PRIMARY KEY,
        heartbeat_ms    BIGINT NOT NULL,
        agent_version   VARCHAR NOT NULL,
        policy_version  VARCHAR NOT NULL,
        sensors         VARCHAR NOT NULL,  -- "keyboard=running, usb=crashed"
        outbox_pending  UBIGINT NOT NULL,
        dropped         UBIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE machines (
        agent_id    VARCHAR PRIMARY KEY,
        room        VARCHAR NOT NULL DEFAULT '',
        site        VARCHAR NOT NULL DEFAULT '',
        grp         VARCHAR NOT NULL DEFAULT '',
        updated_ms  BIGINT NOT NULL,
        updated_by  VARCHAR NOT NULL
    );
    CREATE TABLE accounts (
        username       VARCHAR PRIMARY KEY,
        display_name   VARCHAR NOT NULL,
        role           VARCHAR NOT NULL,
        password_hash  VARCHAR NOT NULL,
        created_ms     BIGINT NOT NULL,
        disabled_ms    BIGINT
    );
    CREATE TABLE audit (
        seq        BIGINT PRIMARY KEY,
        at_ms      BIGINT NOT NULL,
        actor      VARCHAR NOT NULL,
        action     VARCHAR NOT NULL,
        target     VARCHAR NOT NULL,
        detail     VARCHAR NOT NULL,
        prev_hash  BLOB NOT NULL,
        hash       BLOB NOT NULL
    );
    CREATE SEQUENCE action_id;
    CREATE TABLE incident_actions (
        id           BIGINT PRIMARY KEY DEFAULT nextval('action_id'),
        incident_id  BIGINT NOT NULL,
        kind         VARCHAR NOT NULL,     -- note, follow_up, status, outcome
        text         VARCHAR NOT NULL,
        due_date     DATE,
        done_ms      BIGINT,
        by_user      VARCHAR NOT NULL,
        at_ms        BIGINT NOT NULL
    );
    CREATE SEQUENCE referral_id;
    CREATE TABLE referrals (
        id             BIGINT PRIMARY KEY DEFAULT nextval('referral_id'),
        incident_id    BIGINT NOT NULL,
        outcome        VARCHAR NOT NULL,   -- referred_police, referred_lado, ...
        note           VARCHAR NOT NULL,
        requested_by   VARCHAR NOT NULL,
        requested_ms   BIGINT NOT NULL,
        confirmed_by   VARCHAR,
        confirmed_ms   BIGINT,
        state          VARCHAR NOT NULL DEFAULT 'pending'  -- pending, confirmed, withdrawn
    );
    CREATE SEQUENCE exemption_request_id;
    CREATE TABLE exemption_requests (
        id            BIGINT PRIMARY KEY DEFAULT nextval('exemption_request_id'),
        grp           VARCHAR NOT NULL,
        terms         VARCHAR NOT NULL,
        sites         VARCHAR NOT NULL,
        start_date    DATE NOT NULL,
        end_date      DATE NOT NULL,
        reason        VARCHAR NOT NULL,
        requested_by  VARCHAR NOT NULL,
        requested_ms  BIGINT NOT NULL,
        decided_by    VARCHAR,
        decided_ms    BIGINT,
        state         VARCHAR NOT NULL DEFAULT 'requested'  -- requested, approved, refused
    );
    CREATE TABLE settings (
        key    VARCHAR PRIMARY KEY,
        value  VARCHAR NOT NULL
    );
    """,
    # 3: console accounts managed in the console (collector/console/views_accounts.py): a
    # temporary password (set by someone else) must be changed at the next login; when the
    # password last changed and when the account last logged in, for the Accounts page.
    # Accounts that exist already are not flagged: nobody can tell who chose their password.
    """
    ALTER TABLE accounts ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT false;
    ALTER TABLE accounts ADD COLUMN password_changed_ms BIGINT;
    ALTER TABLE accounts ADD COLUMN last_login_ms BIGINT;
    UPDATE accounts SET password_changed_ms = created_ms;
    """,
    # 4: clocks (collector/intake/clock.py). The PC's clock against the collector's, measured when a
    # stream opens: the last skew on the agent's record, and on each event stored from a
    # session whose skew was beyond the setting (NULL: within it, or not measured), so the
    # console can show the event's time corrected by it beside the PC's own.
    """
    ALTER TABLE agents ADD COLUMN clock_skew_ms BIGINT;
    ALTER TABLE agents ADD COLUMN clock_measured_ms BIGINT;
    ALTER TABLE events ADD COLUMN clock_skew_ms BIGINT;
    """,
    # 5: escalation notifies again (issue 16): the severity the DSL was last told of, so a
    # candidate that rises past it is sent again with its new severity.
    """
    ALTER TABLE incidents ADD COLUMN notified_severity UTINYINT DEFAULT 0;
    UPDATE incidents SET notified_severity = severity WHERE notified_ms IS NOT NULL;
    """,
    # 6: incident records under the chain discipline (collector/integrity/records.py): every
    # change to an
    # incident, append-only and chained. `fields` is NULL once retention purges the incident
    # (its hash stays in `fields_hash`, which the chain covers).
    """
    CREATE TABLE incident_log (
        seq          BIGINT PRIMARY KEY,
        incident_id  BIGINT NOT NULL,
        at_ms        BIGINT NOT NULL,
        actor        VARCHAR NOT NULL,
        kind         VARCHAR NOT NULL,
        fields       VARCHAR,
        fields_hash  VARCHAR NOT NULL,
        prev_hash    BLOB NOT NULL,
        hash         BLOB NOT NULL
    );
    """,
    # 7: who made each console account (collector/incidents/triage.py: an account its maker
    # created cannot be the second person on the maker's referral). '' for accounts made before.
    """
    ALTER TABLE accounts ADD COLUMN created_by VARCHAR DEFAULT '';
    """,
    # 8: two-factor sign-in for the console (collector/two_factor.py, issue 16): each account's
    # TOTP secret (NULL: not enrolled yet), the last time step a code was accepted for (so a
    # code cannot be used twice), and single-use recovery codes, stored as SHA-256 digests.
    """
    ALTER TABLE accounts ADD COLUMN totp_secret VARCHAR;
    ALTER TABLE accounts ADD COLUMN totp_last_step BIGINT;
    CREATE TABLE recovery_codes (
        username   VARCHAR NOT NULL,
        code_hash  BLOB NOT NULL,
        used_ms    BIGINT
    );
    """,
    # 9: nothing trusted from a PC (issue 16): an event with a field no honest agent sends (a
    # category no policy defines, control characters, an over-long text) is stored, as signed
    # evidence, with the field and why here; it is never judged as a detection.
    """
    ALTER TABLE events ADD COLUMN malformed VARCHAR;
    """,
    # 10: a senior role given in the console waits for a second senior (collector/accounts.py):
    # until approved the account cannot sign in. Accounts made before were never held.
    """
    ALTER TABLE accounts ADD COLUMN awaiting_approval BOOLEAN DEFAULT false;
    ALTER TABLE accounts ADD COLUMN approved_by VARCHAR;
    ALTER TABLE accounts ADD COLUMN approved_ms BIGINT;
    """,
    # 11: outcomes as schools record them (issue 17): the CPOMS record's reference when an
    # incident is "recorded in CPOMS" ('' otherwise; covered by the incident's record).
    """
    ALTER TABLE incidents ADD COLUMN cpoms_ref VARCHAR DEFAULT '';
    """,
    # 12: one concern per candidate (collector/incidents/concerns.py). '' for candidates made
    # before: at the next start each gets its concern, or, if it mixed several and no one has
    # triaged it, is superseded by one candidate per concern (concern_split.split_by_concern).
    """
    ALTER TABLE incidents ADD COLUMN concern VARCHAR DEFAULT '';
    """,
    # 13: the monitoring notice (issue 18): when each PC last showed it to a pupil at login, and
    # the policy version its text came from, from the agents' heartbeats (NULL: never seen).
    """
    ALTER TABLE agent_health ADD COLUMN notice_shown_ms BIGINT;
    ALTER TABLE agent_health ADD COLUMN notice_version VARCHAR DEFAULT '';
    """,
    # 14: who on the safeguarding team has a candidate (issue 17 item 5): a username, '' for no
    # one; set from the list or the incident, covered by the incident's record.
    """
    ALTER TABLE incidents ADD COLUMN assigned_to VARCHAR DEFAULT '';
    """,
    # 15: the pupil roster (collector/roster/, issue 17): names, year and class from the MIS,
    # matched to login accounts. A pupil absent from a later import is marked left (left_ms)
    # and the row goes when retention purges (collector/storage/retention.py).
    """
    CREATE TABLE roster (
        account      VARCHAR PRIMARY KEY,
        first        VARCHAR NOT NULL,
        last         VARCHAR NOT NULL,
        year         VARCHAR NOT NULL DEFAULT '',
        class        VARCHAR NOT NULL DEFAULT '',
        upn          VARCHAR NOT NULL DEFAULT '',
        staff        BOOLEAN NOT NULL DEFAULT false,
        imported_ms  BIGINT NOT NULL,
        updated_ms   BIGINT NOT NULL,
        left_ms      BIGINT
    );
    """,
    # 16: screenshot evidence (issue 18, collector/intake/screenshots.py): one row per sealed
    # file held, as the PC sent it (sealed at rest; opened only to show it). The event names the
    # file by its SHA-256 (Event.screenshot_sha256); the image may arrive before its event.
    """
    CREATE TABLE screenshots (
        agent_id     VARCHAR NOT NULL,
        event_id     VARCHAR NOT NULL,
        sha256       VARCHAR NOT NULL,
        size         BIGINT NOT NULL,
        received_ms  BIGINT NOT NULL,
        path         VARCHAR NOT NULL,
        PRIMARY KEY (agent_id, sha256)
    );
    """,
    # 17: saved filters (issue 17 item 5): each console account's named incident-list queries
    # (collector/incidents/saved_filters.py); the query is the list's own, checked on save.
    """
    CREATE TABLE saved_filters (
        username    VARCHAR NOT NULL,
        name        VARCHAR NOT NULL,
        query       VARCHAR NOT NULL,
        created_ms  BIGINT NOT NULL,
        PRIMARY KEY (username, name)
    );
    """,
]
