import { median, quantile, seededRandom, sleep } from "./util.js";

/** One measured run of one variant. */
export type RunResult = {
  ops: number;
  durationMs: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** CPU time of this Node process (user + system) per operation: the client side's cost. */
  cpuUsPerOp: number;
};

/** The lock operations every in-process contender offers (lib, raw pg, handlers, peers). */
export type LockTarget = {
  get(deviceId: string): Promise<unknown>;
  set(deviceId: string, agent: string, ttlSeconds: number): Promise<unknown>;
  clear(deviceId: string): Promise<unknown>;
};

export type Mix = { get: number; set: number; clear: number };

/** The mix: 60% get, 30% set, 10% clear. */
export const LOCK_MIX: Mix = { get: 0.6, set: 0.3, clear: 0.1 };

const AGENTS = ["scheduling", "billing", "support"] as const;
export const TTL_SECONDS = 3600;

/** An operation source: each call picks an operation and a device with the seeded PRNG. */
export function mixedOperations(
  target: LockTarget,
  devices: readonly string[],
  mix: Mix,
  seed: number,
): () => Promise<unknown> {
  const random = seededRandom(seed);
  const setBelow = mix.get + mix.set;
  return () => {
    const pick = random();
    const device = devices[Math.floor(random() * devices.length)] as string;
    if (pick < mix.get) return target.get(device);
    if (pick < setBelow) return target.set(device, AGENTS[Math.floor(random() * 3)] as string, TTL_SECONDS);
    return target.clear(device);
  };
}

function summarise(latencies: number[], ops: number, durationMs: number, cpu: NodeJS.CpuUsage): RunResult {
  const sorted = Float64Array.from(latencies).sort();
  return {
    ops,
    durationMs,
    opsPerSec: (ops / durationMs) * 1000,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    maxMs: sorted[sorted.length - 1] ?? Number.NaN,
    cpuUsPerOp: (cpu.user + cpu.system) / Math.max(1, ops),
  };
}

/**
 * Closed loop: `concurrency` workers each issue the next operation as soon as the previous one
 * answered, for `durationMs`. Any failed operation fails the run: a bench must not count errors
 * as throughput.
 */
export async function closedLoop(
  next: () => Promise<unknown>,
  options: { concurrency: number; durationMs: number },
): Promise<RunResult> {
  const latencies: number[] = [];
  const cpuAtStart = process.cpuUsage();
  const startedAt = performance.now();
  const deadline = startedAt + options.durationMs;
  const worker = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      await next();
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return summarise(latencies, latencies.length, performance.now() - startedAt, process.cpuUsage(cpuAtStart));
}

/**
 * Open loop at a fixed rate, until `stop` resolves: operation `k` is due at `start + k / rate`, and
 * its latency counts from when it was due, so time spent queued behind a blocked one counts too
 * (no coordinated omission). At most `maxInFlight` run at once; later ones wait and show it.
 */
export async function pacedLoad(
  next: () => Promise<unknown>,
  options: { ratePerSec: number; maxInFlight: number; stop: Promise<unknown> },
): Promise<RunResult> {
  const latencies: number[] = [];
  const failures: unknown[] = [];
  let stopped = false;
  const cpuAtStart = process.cpuUsage();
  void options.stop.finally(() => {
    stopped = true;
  });
  const startedAt = performance.now();
  const intervalMs = 1000 / options.ratePerSec;
  let issued = 0;
  let inFlight = 0;
  const running = new Set<Promise<void>>();
  while (!stopped) {
    const now = performance.now();
    while (!stopped && inFlight < options.maxInFlight && startedAt + issued * intervalMs <= now) {
      const dueAt = startedAt + issued * intervalMs;
      issued++;
      inFlight++;
      const run = next().then(
        () => {
          latencies.push(performance.now() - dueAt);
        },
        (error: unknown) => {
          failures.push(error);
        },
      );
      const tracked: Promise<void> = run.finally(() => {
        inFlight--;
        running.delete(tracked);
      });
      running.add(tracked);
    }
    await sleep(1);
  }
  await Promise.all(running);
  if (failures.length > 0) throw failures[0];
  return summarise(latencies, latencies.length, performance.now() - startedAt, process.cpuUsage(cpuAtStart));
}

/** Per-variant results over the rounds. */
export type Rounds<V extends string> = Record<V, RunResult[]>;

/**
 * Runs every variant once per round, rotating which goes first, so drift (caches, the table's
 * state, the machine's other load) falls on all of them alike. `before` runs ahead of each run.
 */
export async function compareRounds<V extends string>(
  variants: Record<V, (round: number) => Promise<RunResult>>,
  options: {
    rounds: number;
    before?: (variant: V) => Promise<void>;
    onRun?: (variant: V, r: RunResult) => void;
  },
): Promise<Rounds<V>> {
  const names = Object.keys(variants) as V[];
  const results = Object.fromEntries(names.map((name) => [name, [] as RunResult[]])) as Rounds<V>;
  for (let round = 0; round < options.rounds; round++) {
    const order = names.map((_, i) => names[(i + round) % names.length] as V);
    for (const name of order) {
      await options.before?.(name);
      const result = await variants[name](round);
      results[name].push(result);
      options.onRun?.(name, result);
    }
  }
  return results;
}

/** The medians of a variant's runs. */
export type Summary = { opsPerSec: number; p50Ms: number; p99Ms: number; cpuUsPerOp: number; runs: number };

export function summary(runs: readonly RunResult[]): Summary {
  return {
    opsPerSec: median(runs.map((r) => r.opsPerSec)),
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    cpuUsPerOp: median(runs.map((r) => r.cpuUsPerOp)),
    runs: runs.length,
  };
}

/** The median over rounds of `a / b` throughput, paired by round; with the range. */
export function pairedRatio(
  a: readonly RunResult[],
  b: readonly RunResult[],
): { median: number; min: number; max: number } {
  const ratios = a.map((run, i) => run.opsPerSec / (b[i]?.opsPerSec ?? Number.NaN));
  return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) };
}
