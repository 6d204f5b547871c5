import { createHash } from "node:crypto";
import { jsonLine, type LogRecord } from "../lib/context.js";

/** A small seeded PRNG (mulberry32), so every variant of a round replays the same operations. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** The device id of row `i` as the SQL generators make it: `md5('dev-' || i)::uuid`. */
export function deviceId(i: number): string {
  const hex = createHash("md5").update(`dev-${i}`).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The SQL expression for the same device id. */
export const DEVICE_ID_SQL = (i: string) => `md5('dev-' || ${i})::uuid`;

/**
 * `count` device ids spread evenly over rows `1..rows`, odd and even rows in turn (row
 * `1 + k * rows / count`, plus one for every other `k`): with `fillLocks(…, { halfExpired })`,
 * where the even rows are the expired ones, half of them are expired.
 */
export function spreadDevices(count: number, rows: number): string[] {
  const step = Math.max(2, Math.floor(rows / count));
  return Array.from({ length: count }, (_, k) => deviceId(1 + k * step + (k % 2)));
}

/** The value at quantile `q` (0..1) of an ascending array, nearest rank. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

export function median(values: readonly number[]): number {
  return quantile(Float64Array.from(values).sort(), 0.5);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The handlers' logger in the bench: it builds the JSON line (the cost a function pays) and drops
 * it instead of writing 10,000 lines a second to the terminal.
 */
export function discardingLogger(): (record: LogRecord) => void {
  let sink = "";
  return (record) => {
    sink = jsonLine(record);
    if (sink.length === 0) throw new Error("unreachable");
  };
}

/** Progress on stderr, so stdout stays the summary. */
export function progress(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

export function round(value: number, digits = 2): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}
