import pg from "pg";
import { createBenchDatabase, dropBenchDatabase, fillLocks, vacuum } from "../admin.js";
import type { BenchConfig } from "../config.js";
import { libContender } from "../contenders.js";
import { closedLoop, compareRounds, LOCK_MIX, mixedOperations, type RunResult } from "../load.js";
import { progress, round, spreadDevices } from "../util.js";

/**
 * Case 8: the same 60/30/10 mix over 10,000 devices through the lib, on a table of `smallRows`
 * and one of `largeRows` (two databases, filled alike, the devices spread evenly through each
 * table), alternating round by round. With the heap and index blocks read from disk or the OS
 * cache (not Postgres's shared buffers) per run, to explain a gap.
 */

export type ScaleRun = RunResult & { blocksReadPerOp: number; tableBytes: number };

export type ScaleResult = {
  concurrency: number;
  small: { rows: number; runs: ScaleRun[] };
  large: { rows: number; runs: ScaleRun[] };
};

async function blockReads(url: string): Promise<{ read: number; bytes: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query("select pg_stat_clear_snapshot()");
    const { rows } = await client.query<{ read: string; bytes: string }>(
      `select (coalesce(heap_blks_read, 0) + coalesce(idx_blks_read, 0))::text as read,
              pg_total_relation_size('conversation_states')::text as bytes
       from pg_statio_user_tables where relname = 'conversation_states'`,
    );
    return { read: Number(rows[0]?.read ?? 0), bytes: Number(rows[0]?.bytes ?? 0) };
  } finally {
    await client.end();
  }
}

export async function runScale(config: BenchConfig): Promise<ScaleResult> {
  const { smallRows, largeRows, concurrency, runMs, rounds } = config.scale;
  const small = await createBenchDatabase("scale_small");
  const large = await createBenchDatabase("scale_large");
  try {
    await fillLocks(small.url, smallRows, { halfExpired: false });
    await fillLocks(large.url, largeRows, { halfExpired: false });
    const tables = {
      small: { ...small, devices: spreadDevices(config.devices, smallRows) },
      large: { ...large, devices: spreadDevices(config.devices, largeRows) },
    };
    const libs = {
      small: await libContender(small.url, config.poolMax),
      large: await libContender(large.url, config.poolMax),
    };
    try {
      const measure = (size: "small" | "large") => async (r: number) => {
        const { url, devices } = tables[size];
        const before = await blockReads(url);
        const result = await closedLoop(mixedOperations(libs[size], devices, LOCK_MIX, 500 + r), {
          concurrency,
          durationMs: runMs,
        });
        // Backends flush their counters within a second of going idle.
        await new Promise((resolve) => setTimeout(resolve, 1100));
        const after = await blockReads(url);
        return {
          ...result,
          blocksReadPerOp: (after.read - before.read) / result.ops,
          tableBytes: after.bytes,
        };
      };
      for (const size of ["small", "large"] as const) {
        progress(`scale warm-up ${size}`);
        await closedLoop(mixedOperations(libs[size], tables[size].devices, LOCK_MIX, 9), {
          concurrency,
          durationMs: runMs,
        });
      }
      const runs = (await compareRounds(
        { small: measure("small"), large: measure("large") },
        {
          rounds,
          before: (size) => vacuum(tables[size].url, ["conversation_states"]),
          onRun: (size, r) =>
            progress(`scale ${size}: ${Math.round(r.opsPerSec)} ops/s, p99 ${round(r.p99Ms)} ms`),
        },
      )) as { small: ScaleRun[]; large: ScaleRun[] };
      return {
        concurrency,
        small: { rows: smallRows, runs: runs.small },
        large: { rows: largeRows, runs: runs.large },
      };
    } finally {
      await libs.small.close();
      await libs.large.close();
    }
  } finally {
    await dropBenchDatabase(small.name);
    await dropBenchDatabase(large.name);
  }
}
