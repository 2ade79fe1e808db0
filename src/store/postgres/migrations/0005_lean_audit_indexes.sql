-- The audit table's b-trees are kept to what narrows a query (issue 18). `audit_client` goes: a
-- handful of clients write nearly every entry, so a query by client reads nearly as much of the
-- index as a walk of the log in `id` order, which is what it now does (as for page, category,
-- outcome and reason), and every entry paid for one more b-tree insertion.
--
-- `audit_at` stays a b-tree. A BRIN index on `at` was measured (BENCHMARKS.md): ten minutes out
-- of a million entries took 29 ms through it, 0.14 ms through the b-tree.
DROP INDEX audit_client;
