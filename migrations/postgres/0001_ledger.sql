-- tron-signer shared ledger, schema version 1.
--
-- Applied by the signer at start (src/ledger/pg/migrate.rs), in one transaction, under an
-- advisory lock so that two instances starting together do not both apply it. Never edit a
-- migration that has shipped: add the next file instead.

-- One row per issued (or being issued) signature, keyed by txid. A txid belongs to exactly
-- one signing key (the owner address is inside the signed bytes), so every write to a row
-- happens under that key's advisory lock.
CREATE TABLE entries (
    txid          bytea   PRIMARY KEY CHECK (length(txid) = 32),
    key           bytea   NOT NULL CHECK (length(key) = 21),
    -- The key's version when this row last changed (see key_versions).
    kver          bigint  NOT NULL,
    state         text    NOT NULL CHECK (state IN ('reserved', 'signed', 'void')),
    expiration_ms bigint  NOT NULL,
    -- sha256(key || payout id): at most one reservation per payout at a time.
    payout_key    bytea   NOT NULL CHECK (length(payout_key) = 32),
    -- The entry in the ledger's own binary layout (src/ledger/entry.rs); the signature and
    -- audit sequence inside are zero until the row is signed.
    body          bytea   NOT NULL,
    audit_seq     bigint  UNIQUE,
    -- The instance holding a reservation, and until when it may complete it.
    instance      text    NOT NULL,
    lease_until   timestamptz,
    CHECK ((state = 'signed') = (audit_seq IS NOT NULL))
);
CREATE INDEX entries_key_kver ON entries (key, kver);
CREATE INDEX entries_reserved ON entries (key, lease_until) WHERE state = 'reserved';
CREATE UNIQUE INDEX entries_one_reservation_per_payout
    ON entries (payout_key) WHERE state = 'reserved';

-- Per signing key, a counter bumped by every change to its entries, under its advisory
-- lock: an instance that has seen version N reads only the rows changed after N.
CREATE TABLE key_versions (
    key  bytea  PRIMARY KEY CHECK (length(key) = 21),
    kver bigint NOT NULL CHECK (kver > 0)
);

-- The one audit hash chain every instance appends to. A row is the record's canonical
-- bytes followed by their sha256 (src/ledger/audit.rs); prev_hash is unique, so two records
-- can never claim the same predecessor.
CREATE TABLE audit (
    seq       bigint PRIMARY KEY CHECK (seq > 0),
    prev_hash bytea  NOT NULL UNIQUE CHECK (length(prev_hash) = 32),
    row       bytea  NOT NULL,
    instance  text   NOT NULL
);

-- The chain head: a single row, locked FOR UPDATE by each group commit.
CREATE TABLE audit_head (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq  bigint  NOT NULL CHECK (seq >= 0),
    hash bytea   NOT NULL CHECK (length(hash) = 32)
);
INSERT INTO audit_head (id, seq, hash) VALUES (true, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');

-- Named values shared by the instances: the policy in force, the freezes, the latest
-- signing time.
CREATE TABLE meta (
    name  text  PRIMARY KEY,
    value bytea NOT NULL
);
