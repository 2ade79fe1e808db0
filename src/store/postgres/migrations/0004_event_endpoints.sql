-- Event endpoints (issue 19) and how far each has heard. Events themselves are not stored: they
-- are read from the audit log (`domain::event`); these tables keep who hears them, where each
-- endpoint's delivery stands in each audit chain, what waits for a retry, and what was tried.
-- Deleting an endpoint deletes the rest of what it has (ON DELETE CASCADE).

-- The endpoint as the domain encodes it (`EndpointRecord`), jsonb like campaigns: a handful of
-- rows, read whole and written rarely (by an administrator, or a failing streak), which an
-- operator may want to query; `created_at` orders the listing. The record holds the signing
-- secrets, as the sled store's does: they never leave the store but through the secret route.
CREATE TABLE event_endpoints (
    id         text COLLATE "C" PRIMARY KEY,
    created_at timestamptz NOT NULL,
    record     jsonb NOT NULL
);

-- The last seq of each audit chain handed over to the endpoint (delivered, or pending). Only
-- the owner of the chain's partition moves it, fenced by the partition's epoch.
CREATE TABLE event_cursors (
    endpoint text COLLATE "C" NOT NULL REFERENCES event_endpoints (id) ON DELETE CASCADE,
    chain    integer NOT NULL,
    seq      bigint NOT NULL,
    PRIMARY KEY (endpoint, chain)
);

-- Events waiting to be delivered (again): after a failed attempt, or asked for by a replay.
-- The event is named by where it is read from (chain, seq, index), never copied.
CREATE TABLE event_pending (
    endpoint text COLLATE "C" NOT NULL REFERENCES event_endpoints (id) ON DELETE CASCADE,
    chain    integer NOT NULL,
    seq      bigint NOT NULL,
    index    smallint NOT NULL,
    due      timestamptz NOT NULL,
    attempts integer NOT NULL,
    PRIMARY KEY (endpoint, chain, seq, index)
);
-- An endpoint's due retries, earliest first (filtered by the chains this instance runs).
CREATE INDEX event_pending_due ON event_pending (endpoint, due);

-- Every attempt (`DeliveryAttempt` as JSON text, as it is only ever read whole), listed newest
-- first per endpoint by its `att_<ULID>` id (bytewise: COLLATE "C"). One row per delivered
-- event and endpoint: the row and its primary key are all a success writes. Failures are few
-- and listed on their own (`?status=failed`), so only they have a second index. Retention:
-- attempts older than the audit log's retention are pruned with it (`at`; a BRIN index costs
-- next to nothing as rows arrive in time order).
CREATE TABLE event_attempts (
    endpoint text COLLATE "C" NOT NULL REFERENCES event_endpoints (id) ON DELETE CASCADE,
    id       text COLLATE "C" NOT NULL,
    status   text NOT NULL,
    at       timestamptz NOT NULL,
    attempt  text NOT NULL,
    PRIMARY KEY (endpoint, id)
);
CREATE INDEX event_attempts_unsuccessful ON event_attempts (endpoint, status, id)
    WHERE status <> 'succeeded';
CREATE INDEX event_attempts_at ON event_attempts USING brin (at);
