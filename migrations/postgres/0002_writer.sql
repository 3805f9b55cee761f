-- The node that holds the write lease, as it advertised itself: where the other nodes forward
-- writes. One row at most; NULL url for a writer that serves no HTTP (an offline import).
CREATE TABLE ledger_writer (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    url text,
    since timestamptz NOT NULL DEFAULT now()
);
