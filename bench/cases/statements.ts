import { open, stat } from "node:fs/promises";
import { route } from "../../api/session-lock.js";
import { createContext } from "../../lib/context.js";
import { openDatabase } from "../../lib/db.js";
import { parseEnv } from "../../lib/env.js";
import { createBenchDatabase, dropBenchDatabase, sqlOnce } from "../admin.js";
import type { BenchConfig } from "../config.js";
import { deviceId, discardingLogger, progress, sleep } from "../util.js";

/**
 * Case 5: statements the server runs per request, for each kind of request, counted on the server.
 *
 * pg_stat_statements needs `shared_preload_libraries` and a server restart, which this shared
 * server cannot take while others use it. Instead the bench's own database gets
 * `ALTER DATABASE … SET log_statement = 'all'` (only sessions on that database log; the setting
 * goes with the database when it is dropped), and the bench counts the `statement:` / `execute`
 * lines of that database in the server log. As a cross-check that does not need the log, it also
 * counts committed transactions (`pg_stat_database.xact_commit`): every statement here runs in its
 * own implicit transaction, so the two agree when nothing else runs, once the one transaction a
 * backend commits while it starts is taken off (one connection a kind).
 */

export type StatementKind =
  | "GET (lock held)"
  | "GET (no lock)"
  | "PUT"
  | "PUT If-None-Match: * (acquired)"
  | "PUT If-Match (renewed)"
  | "DELETE"
  | "DELETE If-Match (cleared)"
  | "PUT If-None-Match: * (refused, 412)";

export type StatementsResult = {
  method: string;
  logFile: string | null;
  kinds: { kind: StatementKind; requests: number; loggedPerRequest: number | null; xactPerRequest: number }[];
};

const LOG_CANDIDATES = ["/var/log/postgresql/postgresql-15-main.log", "/var/log/postgresql/postgresql.log"];

async function serverLogFile(): Promise<string | null> {
  const [row] = await sqlOnce<{ file: string | null }>("select pg_current_logfile() as file");
  const dataDir = (await sqlOnce<{ setting: string }>("show data_directory"))[0]?.setting;
  const candidates = [
    process.env.BENCH_PG_LOG,
    row?.file && dataDir ? `${dataDir}/${row.file}` : undefined,
    ...LOG_CANDIDATES,
  ];
  for (const file of candidates) {
    if (!file) continue;
    try {
      const handle = await open(file, "r");
      await handle.close();
      return file;
    } catch {}
  }
  return null;
}

async function readFrom(file: string, offset: number): Promise<string> {
  const handle = await open(file, "r");
  try {
    const { size } = await handle.stat();
    const buffer = Buffer.alloc(Math.max(0, size - offset));
    await handle.read(buffer, 0, buffer.length, offset);
    return buffer.toString("utf8");
  } finally {
    await handle.close();
  }
}

export async function runStatements(config: BenchConfig): Promise<StatementsResult> {
  const { name, url } = await createBenchDatabase("statements");
  await sqlOnce(`alter database ${name} set log_statement = 'all'`);
  const logFile = await serverLogFile();
  if (!logFile) progress("the server log is not readable here: counting transactions only");
  const n = config.statements.perKind;
  const env = parseEnv({ DATABASE_URL: url, DATABASE_DRIVER: "pg", DATABASE_POOL_MAX: "1" });
  const base = "http://localhost/api/session-lock";
  const json = { "Content-Type": "application/json" };
  const body = JSON.stringify({ agent: "scheduling", ttlSeconds: 3600 });
  const versions = new Map<string, string>();
  // Each kind: what to prepare (not counted) and the request to count, for device i.
  type Step = (i: number) => Request;
  const kinds: { kind: StatementKind; status: number; setup?: Step; request: Step; remember?: boolean }[] = [
    {
      kind: "PUT",
      status: 200,
      request: (i) =>
        new Request(base, { method: "PUT", headers: { "X-Device-ID": deviceId(i), ...json }, body }),
    },
    {
      kind: "GET (lock held)",
      status: 200,
      request: (i) => new Request(base, { headers: { "X-Device-ID": deviceId(i) } }),
    },
    {
      kind: "DELETE",
      status: 200,
      request: (i) => new Request(base, { method: "DELETE", headers: { "X-Device-ID": deviceId(i) } }),
    },
    {
      kind: "GET (no lock)",
      status: 200,
      request: (i) => new Request(base, { headers: { "X-Device-ID": deviceId(i) } }),
    },
    {
      kind: "PUT If-None-Match: * (acquired)",
      status: 200,
      remember: true,
      request: (i) =>
        new Request(base, {
          method: "PUT",
          headers: { "X-Device-ID": deviceId(i), "If-None-Match": "*", ...json },
          body,
        }),
    },
    {
      kind: "PUT If-None-Match: * (refused, 412)",
      status: 412,
      request: (i) =>
        new Request(base, {
          method: "PUT",
          headers: { "X-Device-ID": deviceId(i), "If-None-Match": "*", ...json },
          body,
        }),
    },
    {
      kind: "PUT If-Match (renewed)",
      status: 200,
      remember: true,
      request: (i) =>
        new Request(base, {
          method: "PUT",
          headers: { "X-Device-ID": deviceId(i), "If-Match": versions.get(deviceId(i)) ?? '"0"', ...json },
          body,
        }),
    },
    {
      kind: "DELETE If-Match (cleared)",
      status: 200,
      request: (i) =>
        new Request(base, {
          method: "DELETE",
          headers: { "X-Device-ID": deviceId(i), "If-Match": versions.get(deviceId(i)) ?? '"0"' },
        }),
    },
  ];
  const xactCommit = async () => {
    await sleep(50);
    const [row] = await sqlOnce<{ n: string }>(
      "select xact_commit::text as n from pg_stat_database where datname = $1",
      [name],
    );
    return Number(row?.n ?? 0);
  };
  const results: StatementsResult["kinds"] = [];
  try {
    for (const { kind, status, request, remember } of kinds) {
      // A fresh pool per kind; closing it makes its backends exit, which flushes their statistics.
      const handle = await openDatabase({ url, driver: "pg", poolMax: 1 });
      const context = createContext(env, { open: async () => handle, log: discardingLogger() });
      const handlers = route(() => context);
      const commitsBefore = await xactCommit();
      const logOffset = logFile ? (await stat(logFile)).size : 0;
      for (let i = 1; i <= n; i++) {
        const req = request(i);
        const response = await handlers[req.method as "GET" | "PUT" | "DELETE"](req);
        const text = await response.text();
        if (response.status !== status) throw new Error(`${kind}: ${response.status} ${text}`);
        if (remember) versions.set(deviceId(i), response.headers.get("ETag") ?? "");
      }
      await handle.close();
      await sleep(300);
      const commits = (await xactCommit()) - commitsBefore - 1;
      let logged: number | null = null;
      if (logFile) {
        const lines = (await readFrom(logFile, logOffset)).split("\n");
        logged = lines.filter(
          (line) => line.includes(`@${name} `) && /LOG: {2}(statement|execute [^:]*):/.test(line),
        ).length;
      }
      results.push({
        kind,
        requests: n,
        loggedPerRequest: logged === null ? null : logged / n,
        xactPerRequest: commits / n,
      });
      progress(
        `statements: ${kind}: ${logged === null ? "?" : logged / n} logged, ${commits / n} commits a request`,
      );
    }
  } finally {
    await dropBenchDatabase(name);
  }
  return {
    method: logFile
      ? `log_statement = 'all' on the bench database only, counted in ${logFile}; pg_stat_database.xact_commit as a cross-check`
      : "pg_stat_database.xact_commit (the server log is not readable)",
    logFile,
    kinds: results,
  };
}
