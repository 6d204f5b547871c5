/** How much to measure: `full` for the published numbers, `quick` for a smoke run of every case. */
export type Mode = "full" | "quick";

export type BenchConfig = {
  mode: Mode;
  /** Devices the lock mix runs over. */
  devices: number;
  /** Connections a pool (the lib's and every peer's) may open: the lib's default. */
  poolMax: number;
  /** Cases 1, 2 and 4: lib, raw pg, handlers, connect-pg-simple, Redis, side by side. */
  inProcess: { concurrencies: number[]; rounds: number; runMs: number; warmupMs: number };
  /** Cases 3 and 9: autocannon against the local server and a minimal `node:http` server. */
  http: { connections: number[]; rounds: number; durationSeconds: number; warmupSeconds: number };
  /** Case 5: how many requests of each kind are counted on the server. */
  statements: { perKind: number };
  /** Case 6. */
  purge: { rows: number; rounds: number; batchSize: number; ratePerSec: number; idleMs: number };
  /** Case 7: fresh `node` processes per probe. */
  coldStart: { samples: number };
  /** Case 8. */
  scale: { smallRows: number; largeRows: number; rounds: number; runMs: number; concurrency: number };
};

const full: BenchConfig = {
  mode: "full",
  devices: 10_000,
  poolMax: 10,
  inProcess: { concurrencies: [1, 16, 64], rounds: 5, runMs: 2000, warmupMs: 1000 },
  http: { connections: [16, 64], rounds: 4, durationSeconds: 3, warmupSeconds: 2 },
  statements: { perKind: 200 },
  purge: { rows: 1_000_000, rounds: 3, batchSize: 5000, ratePerSec: 1000, idleMs: 3000 },
  coldStart: { samples: 15 },
  scale: { smallRows: 100_000, largeRows: 5_000_000, rounds: 5, runMs: 3000, concurrency: 16 },
};

const quick: BenchConfig = {
  mode: "quick",
  devices: 10_000,
  poolMax: 10,
  inProcess: { concurrencies: [1, 16, 64], rounds: 3, runMs: 500, warmupMs: 300 },
  http: { connections: [16], rounds: 2, durationSeconds: 2, warmupSeconds: 1 },
  statements: { perKind: 50 },
  purge: { rows: 100_000, rounds: 2, batchSize: 5000, ratePerSec: 1000, idleMs: 1000 },
  coldStart: { samples: 5 },
  scale: { smallRows: 20_000, largeRows: 500_000, rounds: 3, runMs: 700, concurrency: 16 },
};

export function benchConfig(mode: Mode): BenchConfig {
  return mode === "full" ? full : quick;
}
