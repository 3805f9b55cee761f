-- The log. A record holds consecutive events (the format is src/store/record.rs's, the same
-- bytes as on sled, checksum included) and is keyed by its first and its last sequence.
CREATE TABLE ledger_records (
    first_seq bigint PRIMARY KEY CHECK (first_seq > 0),
    last_seq bigint NOT NULL UNIQUE CHECK (last_seq >= first_seq),
    record bytea NOT NULL
);
-- Records are already compact and checked by their own checksum: kept out of line, uncompressed.
ALTER TABLE ledger_records ALTER COLUMN record SET STORAGE EXTERNAL;

-- Which records hold events of a tenant, by the record's last sequence.
CREATE TABLE ledger_tenant_records (
    tenant uuid NOT NULL,
    last_seq bigint NOT NULL,
    first_seq bigint NOT NULL REFERENCES ledger_records (first_seq),
    PRIMARY KEY (tenant, last_seq)
);
