import { createBenchDatabase, dropBenchDatabase, fillLocks, vacuum } from "../admin.js";
import type { BenchConfig } from "../config.js";
import {
  type Contender,
  connectPgSimpleContender,
  handlerContender,
  libContender,
  rawContender,
  redisContender,
  webFloorContender,
} from "../contenders.js";
import {
  closedLoop,
  compareRounds,
  LOCK_MIX,
  mixedOperations,
  type RunResult,
  TTL_SECONDS,
} from "../load.js";
import { deviceId, progress, round } from "../util.js";

/** Cases 1, 2 and 4: the same 60/30/10 mix against every in-process contender, round by round. */

export const IN_PROCESS_VARIANTS = [
  "lib",
  "raw",
  "handlers",
  "webFloor",
  "connectPgSimple",
  "redis",
] as const;
export type InProcessVariant = (typeof IN_PROCESS_VARIANTS)[number];

export type InProcessResult = {
  concurrency: number;
  runs: Partial<Record<InProcessVariant, RunResult[]>>;
}[];

export async function runInProcess(config: BenchConfig, redisUrl: string): Promise<InProcessResult> {
  const { name, url } = await createBenchDatabase("inprocess");
  const devices = Array.from({ length: config.devices }, (_, i) => deviceId(i + 1));
  await fillLocks(url, config.devices, { halfExpired: false });
  const lib = await libContender(url, config.poolMax);
  const contenders: Partial<Record<InProcessVariant, Contender>> = {
    lib,
    raw: rawContender(url, config.poolMax),
    handlers: handlerContender(url, lib.handle, config.poolMax),
    webFloor: webFloorContender(lib.handle),
    connectPgSimple: await connectPgSimpleContender(url, config.poolMax),
  };
  const redis = await redisContender(redisUrl, `bench:${process.pid}:`);
  if (redis) contenders.redis = redis;
  else progress(`no Redis answers at ${redisUrl}: its column stays empty`);

  try {
    // The peers start from the same state as the table: every device locked.
    for (const peer of [contenders.connectPgSimple, contenders.redis]) {
      if (!peer) continue;
      for (let i = 0; i < devices.length; i += 100) {
        await Promise.all(devices.slice(i, i + 100).map((id) => peer.set(id, "scheduling", TTL_SECONDS)));
      }
    }
    const results: InProcessResult = [];
    for (const concurrency of config.inProcess.concurrencies) {
      const variants = Object.fromEntries(
        Object.entries(contenders).map(([variant, contender]) => [
          variant,
          (r: number) =>
            closedLoop(mixedOperations(contender, devices, LOCK_MIX, concurrency * 1000 + r), {
              concurrency,
              durationMs: config.inProcess.runMs,
            }),
        ]),
      ) as Record<InProcessVariant, (round: number) => Promise<RunResult>>;
      for (const [variant, contender] of Object.entries(contenders)) {
        progress(`c=${concurrency} warm-up ${variant}`);
        await closedLoop(mixedOperations(contender, devices, LOCK_MIX, 7), {
          concurrency,
          durationMs: config.inProcess.warmupMs,
        });
      }
      const runs = await compareRounds(variants, {
        rounds: config.inProcess.rounds,
        before: () => vacuum(url, ["conversation_states", "session"]),
        onRun: (variant, r) =>
          progress(`c=${concurrency} ${variant}: ${Math.round(r.opsPerSec)} ops/s, p99 ${round(r.p99Ms)} ms`),
      });
      results.push({ concurrency, runs });
    }
    return results;
  } finally {
    for (const contender of Object.values(contenders)) await contender.close();
    await dropBenchDatabase(name);
  }
}
