import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { createBenchDatabase, dropBenchDatabase, fillLocks, vacuum } from "../admin.js";
import type { BenchConfig } from "../config.js";
import { compareRounds, LOCK_MIX, type RunResult, TTL_SECONDS } from "../load.js";
import type { ChildMessage } from "../servers/control.js";
import { deviceId, progress, round, seededRandom } from "../util.js";

/**
 * Cases 3 and 9: autocannon (keep-alive, one request in flight per connection) against the
 * project's local server and the floor, a minimal `node:http` server on raw pg; in between, to
 * split the gap, the same minimal server on the lib, and a bare Web handler on the lib behind
 * @hono/node-server. Each is a child process with its own pool; the same 60/30/10 mix; the servers
 * report their CPU time and peak RSS.
 */

export const HTTP_VARIANTS = ["localServer", "honoFloor", "minimalHttpLib", "minimalHttp"] as const;

const SCRIPTS: Record<HttpVariant, [script: string, env: Record<string, string>]> = {
  localServer: ["local.ts", {}],
  honoFloor: ["hono-floor.ts", {}],
  minimalHttpLib: ["minimal.ts", { BENCH_STORE: "lib" }],
  minimalHttp: ["minimal.ts", { BENCH_STORE: "raw" }],
};
export type HttpVariant = (typeof HTTP_VARIANTS)[number];

export type HttpRun = RunResult & { serverCpuUsPerRequest: number };

export type HttpResult = {
  byConnections: { connections: number; runs: Record<HttpVariant, HttpRun[]> }[];
  memory: Record<HttpVariant, { idleRssBytes: number; peakRssBytes: number }>;
};

type Child = {
  process: ChildProcess;
  port: number;
  stats(): Promise<Extract<ChildMessage, { type: "stats" }>>;
  stop(): Promise<void>;
};

/** Forks `bench/servers/<script>` (through tsx) and waits until it listens. */
export async function startChild(
  script: string,
  env: Record<string, string>,
  nodeOptions: string[] = [],
): Promise<Child> {
  const child = fork(fileURLToPath(new URL(`../servers/${script}`, import.meta.url)), [], {
    execArgv: [...nodeOptions, "--import", "tsx"],
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  const next = <Type extends ChildMessage["type"]>(type: Type) =>
    new Promise<Extract<ChildMessage, { type: Type }>>((resolve, reject) => {
      const onMessage = (message: ChildMessage) => {
        if (message.type !== type) return;
        child.off("message", onMessage);
        child.off("exit", onExit);
        resolve(message as Extract<ChildMessage, { type: Type }>);
      };
      const onExit = (code: number | null) => reject(new Error(`${script} exited with ${code}`));
      child.on("message", onMessage);
      child.once("exit", onExit);
    });
  const { port } = await next("ready");
  return {
    process: child,
    port,
    stats: () => {
      const answer = next("stats");
      child.send("stats");
      return answer;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.send("stop");
        setTimeout(() => child.kill(), 5000).unref();
      }),
  };
}

/** One autocannon run of the mix; anything but 2xx, or a socket error, fails it. */
export async function cannon(
  port: number,
  devices: readonly string[],
  options: { connections: number; durationSeconds: number; seed: number },
): Promise<RunResult> {
  const random = seededRandom(options.seed);
  const cpuAtStart = process.cpuUsage();
  const result = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: options.connections,
    pipelining: 1,
    duration: options.durationSeconds,
    requests: [
      {
        setupRequest: (request) => {
          const pick = random();
          const device = devices[Math.floor(random() * devices.length)] as string;
          const headers = { "x-device-id": device, "content-type": "application/json" };
          if (pick < LOCK_MIX.get) return { ...request, method: "GET", path: "/api/session-lock", headers };
          if (pick < LOCK_MIX.get + LOCK_MIX.set) {
            const body = JSON.stringify({ agent: "scheduling", ttlSeconds: TTL_SECONDS });
            return { ...request, method: "PUT", path: "/api/session-lock", headers, body };
          }
          return { ...request, method: "DELETE", path: "/api/session-lock", headers };
        },
      },
    ],
  });
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(`autocannon: ${result.non2xx} non-2xx answers, ${result.errors} errors`);
  }
  const cpu = process.cpuUsage(cpuAtStart);
  const ops = result.requests.total;
  return {
    ops,
    durationMs: result.duration * 1000,
    opsPerSec: ops / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    maxMs: result.latency.max,
    cpuUsPerOp: (cpu.user + cpu.system) / Math.max(1, ops),
  };
}

export async function runHttp(config: BenchConfig): Promise<HttpResult> {
  const { name, url } = await createBenchDatabase("http");
  await fillLocks(url, config.devices, { halfExpired: false });
  const devices = Array.from({ length: config.devices }, (_, i) => deviceId(i + 1));
  const env = { BENCH_DATABASE_URL: url, BENCH_POOL_MAX: String(config.poolMax) };
  const children: Partial<Record<HttpVariant, Child>> = {};
  try {
    const idle: Partial<Record<HttpVariant, number>> = {};
    for (const variant of HTTP_VARIANTS) {
      const [script, extra] = SCRIPTS[variant];
      const child = await startChild(script, { ...env, ...extra });
      children[variant] = child;
      idle[variant] = (await child.stats()).rssBytes;
    }
    const byConnections: HttpResult["byConnections"] = [];
    for (const connections of config.http.connections) {
      const variants = Object.fromEntries(
        HTTP_VARIANTS.map((variant) => {
          const child = children[variant] as Child;
          const run = async (r: number): Promise<HttpRun> => {
            const before = await child.stats();
            const result = await cannon(child.port, devices, {
              connections,
              durationSeconds: config.http.durationSeconds,
              seed: connections * 1000 + r,
            });
            const after = await child.stats();
            return {
              ...result,
              serverCpuUsPerRequest: (after.cpuUs - before.cpuUs) / Math.max(1, result.ops),
            };
          };
          return [variant, run];
        }),
      ) as Record<HttpVariant, (round: number) => Promise<HttpRun>>;
      for (const variant of HTTP_VARIANTS) {
        progress(`http c=${connections} warm-up ${variant}`);
        await cannon((children[variant] as Child).port, devices, {
          connections,
          durationSeconds: config.http.warmupSeconds,
          seed: 7,
        });
      }
      const runs = (await compareRounds(variants, {
        rounds: config.http.rounds,
        before: () => vacuum(url, ["conversation_states"]),
        onRun: (variant, r) =>
          progress(
            `http c=${connections} ${variant}: ${Math.round(r.opsPerSec)} req/s, p99 ${round(r.p99Ms)} ms`,
          ),
      })) as Record<HttpVariant, HttpRun[]>;
      byConnections.push({ connections, runs });
    }
    const memory = {} as HttpResult["memory"];
    for (const variant of HTTP_VARIANTS) {
      const peakRssBytes = (await (children[variant] as Child).stats()).maxRssBytes;
      memory[variant] = { idleRssBytes: idle[variant] ?? Number.NaN, peakRssBytes };
    }
    return { byConnections, memory };
  } finally {
    for (const child of Object.values(children)) await child.stop();
    await dropBenchDatabase(name);
  }
}
