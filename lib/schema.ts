import { sql } from "drizzle-orm";
import {
  bigint,
  check,
  index,
  integer,
  pgSequence,
  pgTable,
  timestamp,
  uuid,
  varchar,
} from "drizzle-orm/pg-core";

/** Source of fencing tokens: one sequence, so versions only ever grow, across clears and purges too. */
export const lockVersionSequence = pgSequence("conversation_states_version_seq", {
  startWith: 1,
  // The largest version JavaScript reads exactly (2^53 - 1): past it, nextval fails instead.
  maxValue: Number.MAX_SAFE_INTEGER,
});

/** One row per device that holds (or held, until purged) a lock. */
export const conversationStates = pgTable(
  "conversation_states",
  {
    deviceId: uuid("device_id").primaryKey(),
    activeAgent: varchar("active_agent", { length: 50 }).notNull(),
    lockedAt: timestamp("locked_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    sessionTtlSeconds: integer("session_ttl").notNull().default(86_400),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }).notNull(),
    version: bigint("version", { mode: "number" })
      .notNull()
      .default(sql`nextval('conversation_states_version_seq')`),
  },
  (table) => [
    index("conversation_states_expires_at_idx").on(table.expiresAt),
    check("conversation_states_session_ttl_positive", sql`${table.sessionTtlSeconds} > 0`),
  ],
);
