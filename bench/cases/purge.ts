import pg from "pg";
import { type DatabaseHandle, openDatabase } from "../../lib/db.js";
import { createLockStore } from "../../lib/locks.js";
import { createBenchDatabase, dropBenchDatabase, fillLocks } from "../admin.js";
import type { BenchConfig } from "../config.js";
import { libContender } from "../contenders.js";
import { type Mix, mixedOperations, pacedLoad, type RunResult } from "../load.js";
import { progress, round, sleep, spreadDevices } from "../util.js";

/**
 * Case 6: `rows` locks, every other one expired. Each round fills the table afresh, then runs an
 * open-loop get/set load (`ratePerSec`, 2/3 get, 1/3 set, over 10,000 devices spread through the
 * table, half of them on expired rows) first alone ("idle") and then while the table is purged,
 * once with the lib's batched purge and once with one bare `DELETE` (each on its own fresh table,
 * alternating which goes first; the load is warmed up once before the first round). Rows per second
 * of the purge; p99 of the load during it.
 */

const GET_SET: Mix = { get: 2 / 3, set: 1 / 3, clear: 0 };

export type PurgeRun = {
  method: "batched" | "bareDelete";
  rows: number;
  durationMs: number;
  rowsPerSec: number;
  batches: number;
  idle: RunResult;
  during: RunResult;
};

export type PurgeResult = { rows: number; batchSize: number; ratePerSec: number; runs: PurgeRun[] };

/** A batched purge to measure instead of the lib's (to try a change to it before making it). */
export type PurgeImplementation = (
  db: DatabaseHandle["db"],
  limits: { batchSize: number; timeBudgetMs: number },
) => Promise<{ purged: number; batches: number }>;

export async function runPurge(config: BenchConfig, candidate?: PurgeImplementation): Promise<PurgeResult> {
  const { name, url } = await createBenchDatabase("purge");
  const { rows, batchSize, ratePerSec } = config.purge;
  const devices = spreadDevices(10_000, rows);
  const lib = await libContender(url, config.poolMax);
  // The purge has a connection of its own, as the cron function has in production (and the bare
  // DELETE below has too).
  const cronHandle = await openDatabase({ url, driver: "pg", poolMax: 1 });
  const cron = createLockStore(cronHandle.db);
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const load = (seed: number, stop: Promise<unknown>) =>
    pacedLoad(mixedOperations(lib, devices, GET_SET, seed), { ratePerSec, maxInFlight: 64, stop });
  const runs: PurgeRun[] = [];
  try {
    for (let r = 0; r < config.purge.rounds; r++) {
      const order: PurgeRun["method"][] = r % 2 === 0 ? ["batched", "bareDelete"] : ["bareDelete", "batched"];
      for (const method of order) {
        await fillLocks(url, rows, { halfExpired: true });
        // The load runs once before the first idle measurement, which otherwise falls on a fresh
        // pool and fresh backends: its p99 came out about 4 to 6 times the later rounds'.
        if (runs.length === 0) await load(-1, sleep(config.purge.idleMs));
        const idle = await load(r, sleep(config.purge.idleMs));
        const startedAt = performance.now();
        let purged = 0;
        let batches = 1;
        const purge = (async () => {
          if (method === "batched") {
            const limits = { batchSize, timeBudgetMs: 600_000 };
            const outcome = candidate
              ? await candidate(cronHandle.db, limits)
              : await cron.purgeExpired(limits);
            purged = outcome.purged;
            batches = outcome.batches;
          } else {
            const result = await admin.query("delete from conversation_states where expires_at <= now()");
            purged = result.rowCount ?? 0;
          }
        })();
        const during = await load(r + 100, purge);
        const durationMs = performance.now() - startedAt;
        const run = {
          method,
          rows: purged,
          durationMs,
          rowsPerSec: (purged / durationMs) * 1000,
          batches,
          idle,
          during,
        };
        runs.push(run);
        progress(
          `purge ${method}: ${purged} rows in ${Math.round(durationMs)} ms (${Math.round(run.rowsPerSec)} rows/s), ` +
            `p99 ${round(idle.p99Ms)} ms idle, ${round(during.p99Ms)} ms during`,
        );
      }
    }
    return { rows, batchSize, ratePerSec, runs };
  } finally {
    await admin.end();
    await cronHandle.close();
    await lib.close();
    await dropBenchDatabase(name);
  }
}
