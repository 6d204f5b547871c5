import { pairedRatio, type RunResult } from "./load.js";
import type { BenchResults } from "./results.js";
import { median } from "./util.js";

/** One target of issue 5, as measured. */
export type TargetCheck = {
  case: number;
  label: string;
  /** The measured value (a ratio, or statements per request). */
  value: number;
  /** Range over rounds, when the value is a median of per-round ratios. */
  range?: [number, number];
  target: number;
  /** `min`: value must be at least target; `max`: at most; `exact`: equal. */
  kind: "min" | "max" | "exact";
  met: boolean;
};

function check(
  caseNumber: number,
  label: string,
  value: number,
  target: number,
  kind: TargetCheck["kind"],
  range?: [number, number],
): TargetCheck {
  const met = kind === "min" ? value >= target : kind === "max" ? value <= target : value === target;
  return { case: caseNumber, label, value, target, kind, met, ...(range ? { range } : {}) };
}

function ratio(
  caseNumber: number,
  label: string,
  a: RunResult[],
  b: RunResult[],
  target: number,
): TargetCheck {
  const r = pairedRatio(a, b);
  return check(caseNumber, label, r.median, target, "min", [r.min, r.max]);
}

/** Every target the results cover, in the order. */
export function targetChecks(results: BenchResults): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const { concurrency, runs } of results.inProcess ?? []) {
    if (runs.lib && runs.raw)
      checks.push(ratio(1, `lib / raw pg, c=${concurrency}`, runs.lib, runs.raw, 0.95));
  }
  for (const { concurrency, runs } of results.inProcess ?? []) {
    if (runs.handlers && runs.lib) {
      checks.push(ratio(2, `handlers / lib, c=${concurrency}`, runs.handlers, runs.lib, 0.8));
    }
  }
  for (const { connections, runs } of results.http?.byConnections ?? []) {
    checks.push(
      ratio(3, `local server / minimal node:http, c=${connections}`, runs.localServer, runs.minimalHttp, 0.8),
    );
  }
  const at16 = results.inProcess?.find((entry) => entry.concurrency === 16);
  if (at16?.runs.lib && at16.runs.connectPgSimple) {
    checks.push(ratio(4, "lib / connect-pg-simple, c=16", at16.runs.lib, at16.runs.connectPgSimple, 1.3));
  }
  for (const entry of results.statements?.kinds ?? []) {
    if (!["GET (lock held)", "GET (no lock)", "PUT", "DELETE"].includes(entry.kind)) continue;
    checks.push(
      check(5, `statements per ${entry.kind}`, entry.loggedPerRequest ?? entry.xactPerRequest, 1, "exact"),
    );
  }
  if (results.purge) {
    const runs = results.purge.runs;
    const batched = runs.filter((run) => run.method === "batched");
    const bare = runs.filter((run) => run.method === "bareDelete");
    const perRound = batched.map((run, i) => run.rowsPerSec / (bare[i]?.rowsPerSec ?? Number.NaN));
    checks.push(
      check(6, "batched purge / bare DELETE, rows/s", median(perRound), 0.5, "min", [
        Math.min(...perRound),
        Math.max(...perRound),
      ]),
    );
    const p99 = batched.map((run) => run.during.p99Ms / run.idle.p99Ms);
    checks.push(
      check(6, "p99 during batched purge / idle", median(p99), 2, "max", [
        Math.min(...p99),
        Math.max(...p99),
      ]),
    );
  }
  if (results.coldStart) {
    const reference = results.coldStart.reference.importMs;
    for (const fn of results.coldStart.functions) {
      checks.push(check(7, `cold import ${fn.name} / Neon + ws`, fn.importMs / reference, 1.5, "max"));
    }
  }
  if (results.scale) {
    checks.push(
      ratio(
        8,
        `${results.scale.large.rows.toLocaleString("en")} rows / ${results.scale.small.rows.toLocaleString("en")} rows`,
        results.scale.large.runs,
        results.scale.small.runs,
        0.9,
      ),
    );
  }
  return checks;
}
