-- One heap-order purge batch as one statement (lib/locks.ts, purgeExpired): the expired rows after
-- the previous batch's last row (`after_row`, a ctid), up to the `batch_size`-th of them within
-- the window of pages before `window_end`, or to the window's end when it holds fewer. Returns how
-- many it deleted and the last row it may have reached (`null`: the window's end).
--
-- A plain DELETE counted by GET DIAGNOSTICS: counting a DELETE's RETURNING rows instead costs half
-- as much again. Both statements read the same transaction's now(); the DELETE re-checks each
-- row's expiry as it locks it, so a lock renewed meanwhile stays. It takes a newer snapshot than
-- the SELECT, so a row set between the two with a TTL shorter than its own wait (expired by this
-- transaction's now() already) can add one to the batch. The bound's plan is a TID range
-- scan, which reads the window's rows in ctid order (test/locks.purge.test.ts checks it); under
-- any other plan a batch would still stay within its window. The transaction commits without
-- waiting for its WAL flush: a crash may forget the last batches, whose rows are expired,
-- invisible to every read and purged again by the next run.
CREATE FUNCTION "purge_expired_heap_batch"(after_row tid, window_end tid, batch_size integer,
  OUT purged integer, OUT last_row text)
LANGUAGE plpgsql AS $$
DECLARE
  bound tid;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  SELECT ctid INTO bound FROM conversation_states
    WHERE ctid > after_row AND ctid < window_end AND expires_at <= now()
    OFFSET batch_size - 1 LIMIT 1;
  IF bound IS NULL THEN
    DELETE FROM conversation_states
      WHERE ctid > after_row AND ctid < window_end AND expires_at <= now();
  ELSE
    DELETE FROM conversation_states
      WHERE ctid > after_row AND ctid <= bound AND expires_at <= now();
  END IF;
  GET DIAGNOSTICS purged = ROW_COUNT;
  last_row := bound::text;
END
$$;
