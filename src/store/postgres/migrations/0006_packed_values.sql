-- Message records and audit entries are stored packed (issue 18): zstd against a dictionary of
-- example values, a tag byte in front that names the dictionary (src/store/packing.rs). Both
-- columns become bytea; the rows already there keep their JSON as UTF-8 bytes, which Herald
-- reads as it is (JSON never starts with a tag). The audit chain's hashes cover that JSON, so
-- they hold either way.
--
-- Each statement rewrites its table: every instance stops for it (an instance of an earlier
-- version would send text to a bytea column).
ALTER TABLE messages ALTER COLUMN record TYPE bytea USING convert_to(record, 'UTF8');
ALTER TABLE audit ALTER COLUMN entry TYPE bytea USING convert_to(entry, 'UTF8');
