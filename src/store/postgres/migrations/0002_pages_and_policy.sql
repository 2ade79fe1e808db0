-- A page Messenger told to slow down (a 613): every instance holds its sends back until `until`,
-- the one that takes the page's partition over too, and across restarts.
CREATE TABLE page_pauses (
    page_id text PRIMARY KEY,
    until   timestamptz NOT NULL
);

-- The policy version each instance runs, for the operator's status page. The policy every
-- instance should run is published in herald_meta ('policy_generation', 'policy_version'): a
-- reload on one instance bumps the generation, and every instance reloads its files when it
-- sees a generation it has not acted on.
ALTER TABLE instances ADD COLUMN policy_version text;
