-- Herald's schema on PostgreSQL: everything the sled store keeps, as tables.
-- Records are JSON as the domain encodes them; what is queried or locked has columns. The
-- records written for every message (messages, traces, idempotency, audit_personal) are kept
-- as JSON text: PostgreSQL stores and returns them without parsing them (jsonb costs the
-- database a parse on every write and a print on every read: BENCHMARKS.md). Recipients,
-- campaigns and parked events are jsonb, for operators to query.

-- Small named values: the partition count the database was made with.
CREATE TABLE herald_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- Pages hash into a fixed number of partitions; each is owned by one instance at a time.
-- `epoch` grows at every change of owner: a write under an older epoch is refused (fencing).
CREATE TABLE partitions (
    partition   integer PRIMARY KEY,
    owner       text,
    epoch       bigint NOT NULL DEFAULT 0,
    lease_until timestamptz NOT NULL DEFAULT '-infinity'
);

-- Instances alive, for the fair share of partitions each takes.
CREATE TABLE instances (
    id              text PRIMARY KEY,
    heartbeat_until timestamptz NOT NULL
);

CREATE TABLE messages (
    id     text PRIMARY KEY,
    record text NOT NULL
);

CREATE TABLE graph_ids (
    graph_id   text PRIMARY KEY,
    message_id text NOT NULL
);

-- Decision traces by the sha256 of their JSON, stored once however many decisions share one.
CREATE TABLE traces (
    sha256 text PRIMARY KEY,
    trace  text NOT NULL
);

-- Messages waiting to be sent, and who holds each: `claimed_by` under `claim_epoch` of the
-- partition (the owner's claim), or with no epoch (a cancel holding it a moment).
CREATE TABLE outbox (
    message_id    text PRIMARY KEY,
    partition     integer NOT NULL,
    due           timestamptz NOT NULL,
    claimed_until timestamptz,
    claimed_by    text,
    claim_epoch   bigint
)
-- A queue: every row is claimed (updated) and then deleted. Room on each page lets a claim be a
-- HOT update (no new index entry, as no claim column is indexed), and a low vacuum threshold
-- clears the dead rows before claims have to step over many of them.
WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000);
-- Claims walk the outbox in due order over the partitions an instance owns.
CREATE INDEX outbox_due ON outbox (due);

CREATE TABLE idempotency (
    client text NOT NULL,
    key    text NOT NULL,
    record text NOT NULL,
    PRIMARY KEY (client, key)
);

CREATE TABLE recipients (
    key             text PRIMARY KEY,
    record          jsonb NOT NULL,
    marketing_token text
);
CREATE INDEX recipients_marketing_token ON recipients (marketing_token)
    WHERE marketing_token IS NOT NULL;

-- Sends allowed to each recipient: the frequency caps and the recipient view read them.
CREATE TABLE sends (
    recipient  text NOT NULL,
    at         timestamptz NOT NULL,
    message_id text NOT NULL,
    category   text NOT NULL,
    PRIMARY KEY (recipient, at, message_id)
);

-- Webhook events applied, by `mid`: Messenger's redeliveries change nothing.
CREATE TABLE webhook_mids (
    mid     text PRIMARY KEY,
    seen_at timestamptz NOT NULL
);

CREATE TABLE parked_events (
    id    bigserial PRIMARY KEY,
    event jsonb NOT NULL
);

-- One hash chain per partition of pages (entries without a page go to chain 0): instances
-- append side by side, each chain in order under its row's lock. `start_*` is where the chain
-- starts after retention pruned its oldest entries.
CREATE TABLE audit_chains (
    chain      integer PRIMARY KEY,
    seq        bigint NOT NULL,
    hash       text NOT NULL,
    start_seq  bigint NOT NULL,
    start_hash text NOT NULL
);

-- The entries as sealed (`entry`: the exact bytes the hash covers), with the fields they are
-- found by. `id` orders the log across chains for reading; `(chain, seq)` is unique: no fork.
CREATE TABLE audit (
    id        bigserial PRIMARY KEY,
    chain     integer NOT NULL,
    seq       bigint NOT NULL,
    at        timestamptz NOT NULL,
    kind      text NOT NULL,
    pseudonym text,
    page_id   text,
    category  text,
    outcome   text,
    reason    text,
    campaign  text,
    client    text,
    entry     text NOT NULL,
    UNIQUE (chain, seq)
);
CREATE INDEX audit_pseudonym ON audit (pseudonym, id) WHERE pseudonym IS NOT NULL;
CREATE INDEX audit_campaign ON audit (campaign, id) WHERE campaign IS NOT NULL;
CREATE INDEX audit_client ON audit (client, id);
CREATE INDEX audit_at ON audit (at, id);

-- Each entry's erasable values, outside the chain: erasure deletes the row, the chain verifies.
CREATE TABLE audit_personal (
    chain    integer NOT NULL,
    seq      bigint NOT NULL,
    personal text NOT NULL,
    PRIMARY KEY (chain, seq)
);

CREATE TABLE campaigns (
    id     text PRIMARY KEY,
    record jsonb NOT NULL
);

-- A campaign's audience in parts: PSIDs one per line, from position `first`.
CREATE TABLE audience (
    campaign text NOT NULL,
    first    bigint NOT NULL,
    psids    text NOT NULL,
    PRIMARY KEY (campaign, first)
);

CREATE TABLE campaign_counts (
    campaign text NOT NULL,
    label    text NOT NULL,
    n        bigint NOT NULL,
    PRIMARY KEY (campaign, label)
);
