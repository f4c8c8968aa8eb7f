-- Rings the pgnotify doorbell when rows are committed to the outbox (outbox-first mode).
--
-- NOTIFY is transactional: the ring is delivered when the inserting transaction COMMITs, and never
-- for one that rolls back; PostgreSQL also folds identical notifications of one transaction into
-- one. So an application that inserts outbox rows in its own transaction needs nothing else.
--
-- The channel is <prefix><pipeline>, byte for byte: the name the pgnotify notifier LISTENs on.
-- The prefix is the trigger's argument and must equal the notifier's channel_prefix (default
-- 'spillway_wake_'); prefix and pipeline name together may be at most 63 bytes.
--
-- Install (idempotent; PostgreSQL 14 or newer):  psql -v ON_ERROR_STOP=1 -d <db> -f trigger.sql
-- For a table other than spillway_outbox, change the table name in CREATE TRIGGER.

CREATE OR REPLACE FUNCTION spillway_outbox_ring() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    prefix text := COALESCE(TG_ARGV[0], 'spillway_wake_');
    p text;
BEGIN
    -- One ring per pipeline per statement, however many rows it inserted.
    FOR p IN SELECT DISTINCT pipeline FROM spillway_new_rows WHERE pipeline IS NOT NULL LOOP
        PERFORM pg_notify(prefix || p, '');
    END LOOP;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER spillway_outbox_ring
    AFTER INSERT ON spillway_outbox
    REFERENCING NEW TABLE AS spillway_new_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION spillway_outbox_ring('spillway_wake_');
