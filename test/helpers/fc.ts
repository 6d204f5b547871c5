import type * as fc from "fast-check";

/**
 * fast-check parameters for a property of this suite: `numRuns` scaled by `FC_RUNS_SCALE` (the
 * stress run raises it; `npm test` keeps the base counts so that each property takes seconds), and
 * `FC_SEED` / `FC_PATH` to replay a counterexample that a failure printed.
 * @param numRuns runs under `npm test`
 */
export function fcParams<T>(numRuns: number): fc.Parameters<T> {
  const scale = Number(process.env.FC_RUNS_SCALE ?? "1");
  const seed = process.env.FC_SEED;
  const path = process.env.FC_PATH;
  return {
    numRuns: Math.max(1, Math.round(numRuns * (Number.isFinite(scale) && scale > 0 ? scale : 1))),
    ...(seed ? { seed: Number(seed) } : {}),
    ...(path ? { path } : {}),
  };
}

/** How much longer than the base a property's test may take when the runs are scaled up. */
export function scaledTimeoutMs(baseMs: number): number {
  const scale = Number(process.env.FC_RUNS_SCALE ?? "1");
  return Math.round(baseMs * Math.max(1, Number.isFinite(scale) ? scale : 1));
}
