-- Purge batches one at a time (lib/locks.ts, purgeExpired): each batch, of either order, first takes
-- the purge's transaction-scoped advisory lock, so that two purges at once (two cron calls, or a
-- cron call and a manual one) take turns batch by batch instead of locking rows in two orders. An
-- expiry-order batch locks the rows before its cutoff and then those at it, which another purge's
-- batch, with a cutoff a renewal moved, may hold in the other order: without the lock, the two
-- deadlocked and one cron call answered 500. Each statement after the lock sees what the batch
-- before it committed (a VOLATILE function takes a new snapshot per statement).
--
-- The lock is the two-key form, whose space is apart from the one-key locks that serialise the
-- versions of a device (lib/locks.ts, SERIALISED); the first key is hashtext('conversation_states
-- purge'), written out.

CREATE OR REPLACE FUNCTION "purge_expired_heap_batch"(after_row tid, window_end tid, batch_size integer,
  OUT purged integer, OUT last_row text)
LANGUAGE plpgsql AS $$
DECLARE
  bound tid;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  PERFORM pg_advisory_xact_lock(-32581179, 0);
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
--> statement-breakpoint

-- One expiry-order batch as one statement: the expired rows from `after_expiry` (the previous
-- batch's cutoff, '-infinity' at first) on, by the `expires_at` index. The cutoff is the expiry of
-- the `batch_size`-th of them. Rows that expired before it go in one range delete (a bitmap scan,
-- in heap order); rows that expired at the very same microsecond go by ctid, only as many as the
-- batch has room for, so a batch never passes `batch_size`. Counted by GET DIAGNOSTICS, not
-- RETURNING. Returns how many it deleted and the cutoff as text (`null`: no rows were left
-- beyond this batch), with the database's microseconds.
CREATE FUNCTION "purge_expired_expiry_batch"(after_expiry timestamptz, batch_size integer,
  OUT purged integer, OUT next_expiry text)
LANGUAGE plpgsql AS $$
DECLARE
  cutoff timestamptz;
  below integer;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  PERFORM pg_advisory_xact_lock(-32581179, 0);
  SELECT expires_at INTO cutoff FROM conversation_states
    WHERE expires_at >= after_expiry AND expires_at <= now()
    ORDER BY expires_at OFFSET batch_size - 1 LIMIT 1;
  DELETE FROM conversation_states
    WHERE expires_at >= after_expiry AND expires_at <= now()
      AND expires_at < coalesce(cutoff, 'infinity');
  GET DIAGNOSTICS below = ROW_COUNT;
  purged := below;
  IF cutoff IS NOT NULL THEN
    DELETE FROM conversation_states
      WHERE ctid = any(array(
          SELECT ctid FROM conversation_states WHERE expires_at = cutoff LIMIT batch_size - below))
        AND expires_at <= now();
    GET DIAGNOSTICS below = ROW_COUNT;
    purged := purged + below;
  END IF;
  next_expiry := cutoff::text;
END
$$;
