-- Versions reach JavaScript as numbers, exact up to 2^53 - 1 (lib/locks.ts): past that, two
-- versions would read back as one, so the sequence stops there with an error instead. START WITH
-- changes no current value (only RESTART would).
ALTER SEQUENCE "public"."conversation_states_version_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9007199254740991 START WITH 1 CACHE 1;
--> statement-breakpoint

-- The expiry-order batch hands its cutoff to the client as text, and the next batch reads it back
-- as timestamptz. In a session whose DateStyle is not ISO, the text carries a zone abbreviation
-- that may read back as another zone (IST: India, or Israel before Postgres 18), and the purge
-- skipped rows. Written in ISO, with a numeric offset, it reads back exactly in any session.
ALTER FUNCTION "purge_expired_expiry_batch"(timestamptz, integer) SET datestyle TO 'ISO';
