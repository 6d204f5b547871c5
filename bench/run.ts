/**
 * `npm run bench` (full, writes docs/benchmarks.md and docs/benchmarks.svg) and
 * `npm run bench:quick` (every case, briefly; writes bench/results/quick.*.tmp only).
 *
 * Options: `--quick`; `--only=inprocess,http,statements,purge,coldstart,scale`; `--no-docs`;
 * `--report=<results.json>` to render the docs from a saved run without measuring.
 * Measures against the Postgres server in DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
 * where it creates and drops its own `bench_*` databases, and Redis at REDIS_URL (default redis://127.0.0.1:6379).
 */

import { mkdir, readFile, writeFile } from "node:fs/promises";
import { cpus, loadavg, release, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { createClient } from "redis";
import { dropAllBenchDatabases, sqlOnce } from "./admin.js";
import { runColdStart } from "./cases/cold-start.js";
import { runHttp } from "./cases/http.js";
import { runInProcess } from "./cases/in-process.js";
import { runPurge } from "./cases/purge.js";
import { runScale } from "./cases/scale.js";
import { runStatements } from "./cases/statements.js";
import { renderChart } from "./chart.js";
import { benchConfig } from "./config.js";
import { renderResults, writeResultsInto } from "./report.js";
import type { BenchResults, Machine } from "./results.js";
import { targetChecks } from "./targets.js";
import { progress } from "./util.js";

const CASES = ["inprocess", "http", "statements", "purge", "coldstart", "scale"] as const;
type CaseName = (typeof CASES)[number];

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    "no-docs": { type: "boolean", default: false },
    report: { type: "string" },
  },
});

const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379";

async function redisVersion(): Promise<string | null> {
  const client = createClient({ url: redisUrl, socket: { connectTimeout: 1000, reconnectStrategy: false } });
  client.on("error", () => {});
  try {
    await client.connect();
    const info = await client.info("server");
    await client.quit();
    return `Redis ${/redis_version:(\S+)/.exec(info)?.[1] ?? "?"}`;
  } catch {
    return null;
  }
}

async function machine(loadAtStart: number): Promise<Machine> {
  const [version] = await sqlOnce<{ version: string }>("select version()");
  const settings = await sqlOnce<{ name: string; setting: string; unit: string | null }>(
    `select name, setting, unit from pg_settings
     where name in ('shared_buffers', 'synchronous_commit', 'fsync', 'autovacuum', 'max_connections', 'jit')
     order by name`,
  );
  return {
    cpu: cpus()[0]?.model.trim() ?? "unknown CPU",
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 1024 ** 3),
    os: `Linux ${release()}`,
    node: process.versions.node,
    postgres: /^PostgreSQL [\d.]+/.exec(version?.version ?? "")?.[0] ?? "PostgreSQL ?",
    postgresSettings: Object.fromEntries(
      settings.map(({ name, setting, unit }) => [
        name,
        unit === "8kB" ? `${(Number(setting) * 8) / 1024} MB` : `${setting}${unit ?? ""}`,
      ]),
    ),
    redis: await redisVersion(),
    loadAverage: { start: loadAtStart, end: loadavg()[0] ?? 0 },
  };
}

async function render(results: BenchResults, writeDocs: boolean): Promise<void> {
  const checks = targetChecks(results);
  const svg = renderChart(results, checks);
  if (writeDocs) {
    await writeFile(new URL("../docs/benchmarks.svg", import.meta.url), svg);
    await writeResultsInto(
      new URL("../docs/benchmarks.md", import.meta.url).pathname,
      renderResults(results, checks, "benchmarks.svg"),
    );
    progress("wrote docs/benchmarks.md and docs/benchmarks.svg");
  } else {
    const base = new URL(`results/${results.mode}`, import.meta.url).pathname;
    await writeFile(`${base}.svg.tmp`, svg);
    await writeFile(`${base}.md.tmp`, renderResults(results, checks, null));
    progress(`wrote ${base}.md.tmp and ${base}.svg.tmp`);
  }
  const width = Math.max(...checks.map((c) => c.label.length));
  for (const c of checks) {
    const target = `${c.kind === "min" ? ">=" : c.kind === "max" ? "<=" : "="} ${c.target}`;
    process.stdout.write(
      `${String(c.case).padStart(2)}. ${c.label.padEnd(width)}  ${c.value.toFixed(2).padStart(6)}  (${target})  ${c.met ? "met" : "MISSED"}\n`,
    );
  }
}

async function main(): Promise<void> {
  await mkdir(new URL("results/", import.meta.url), { recursive: true });
  if (values.report) {
    const saved = JSON.parse(await readFile(values.report, "utf8")) as BenchResults;
    await render(saved, !values["no-docs"] && saved.mode === "full");
    return;
  }
  const mode = values.quick ? "quick" : "full";
  const config = benchConfig(mode);
  const only = new Set<CaseName>(
    values.only ? (values.only.split(",").map((name) => name.trim()) as CaseName[]) : CASES,
  );
  for (const name of only)
    if (!CASES.includes(name)) throw new Error(`Unknown case ${name}; use ${CASES.join(", ")}.`);
  const loadAtStart = loadavg()[0] ?? 0;
  const startedAt = new Date();
  const started = performance.now();
  const partial: Omit<BenchResults, "machine" | "durationSeconds"> = {
    mode,
    startedAt: startedAt.toISOString(),
    command: `npm run ${mode === "full" ? "bench" : "bench:quick"}${values.only ? ` -- --only=${values.only}` : ""}`,
  };
  const runners: Record<CaseName, () => Promise<void>> = {
    inprocess: async () => {
      partial.inProcess = await runInProcess(config, redisUrl);
    },
    http: async () => {
      partial.http = await runHttp(config);
    },
    statements: async () => {
      partial.statements = await runStatements(config);
    },
    purge: async () => {
      partial.purge = await runPurge(config);
    },
    coldstart: async () => {
      partial.coldStart = await runColdStart(config);
    },
    scale: async () => {
      partial.scale = await runScale(config);
    },
  };
  try {
    for (const name of CASES) {
      if (!only.has(name)) continue;
      const caseStarted = performance.now();
      progress(`case ${name} (${mode})`);
      await runners[name]();
      progress(`case ${name} done in ${Math.round((performance.now() - caseStarted) / 1000)} s`);
    }
  } finally {
    await dropAllBenchDatabases();
  }
  const results: BenchResults = {
    ...partial,
    durationSeconds: (performance.now() - started) / 1000,
    machine: await machine(loadAtStart),
  };
  const file = new URL(
    `results/${mode}.json${mode === "full" && !values.only ? "" : ".tmp"}`,
    import.meta.url,
  );
  await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
  progress(`results in ${file.pathname}`);
  await render(results, mode === "full" && !values.only && !values["no-docs"]);
}

// Ctrl-C: drop the bench databases before leaving.
process.once("SIGINT", () => {
  progress("interrupted: dropping the bench databases");
  void dropAllBenchDatabases().finally(() => process.exit(130));
});

await main();
