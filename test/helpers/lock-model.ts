import type { ClearResult, Lock, SetResult } from "../../lib/locks.js";

/**
 * A sequential model of one device's lock, and a linearizability check of concurrent answers
 * against it: a batch of operations ran at once; some serial order of them must explain every
 * answer. Used by `test/model.locks.test.ts`.
 */

export const MODEL_AGENTS = ["scheduling", "billing", "support"] as const;

/** An operation on device number `device`; versions are picked from those seen so far (`pick`). */
export type ModelOp =
  | { kind: "get"; device: number }
  | { kind: "set"; device: number; agent: string; ttlSeconds: number }
  | { kind: "acquire"; device: number; agent: string; ttlSeconds: number }
  | { kind: "renew"; device: number; agent: string; ttlSeconds: number; pick: number }
  | { kind: "release"; device: number; pick: number }
  | { kind: "clear"; device: number }
  | { kind: "expire"; device: number };

/** What the real store answered (times in ms since the epoch), normalised for comparison. */
export type LockView = {
  agent: string;
  ttlSeconds: number;
  version: number;
  lockedAtMs: number;
  expiresAtMs: number;
};
export type Answer =
  | { kind: "get"; lock: LockView | null }
  | { kind: "set"; ok: true; lock: LockView }
  | { kind: "set"; ok: false; reason: string; current: LockView | null }
  | { kind: "clear"; ok: true; cleared: boolean }
  | { kind: "clear"; ok: false; reason: string; current: LockView | null }
  | { kind: "expire"; existed: boolean };

/** An operation as it ran: the version it used (for renew/release) and what it got back. */
export type Executed = { op: ModelOp; version: number | null; answer: Answer };

/** The model's state of one device: its row (active or expired, until cleared) and the largest version it saw. */
export type DeviceState = {
  row: (LockView & { active: boolean }) | null;
  maxVersion: number;
};

export function view(lock: Lock | null): LockView | null {
  return lock
    ? {
        agent: lock.activeAgent,
        ttlSeconds: lock.ttlSeconds,
        version: lock.version,
        lockedAtMs: lock.lockedAt.getTime(),
        expiresAtMs: lock.expiresAt.getTime(),
      }
    : null;
}

export function setAnswer(result: SetResult): Answer {
  return result.ok
    ? { kind: "set", ok: true, lock: view(result.lock) as LockView }
    : { kind: "set", ok: false, reason: result.reason, current: view(result.current) };
}

export function clearAnswer(result: ClearResult): Answer {
  return result.ok
    ? { kind: "clear", ok: true, cleared: result.cleared }
    : { kind: "clear", ok: false, reason: result.reason, current: view(result.current) };
}

const sameLock = (a: LockView | null, b: LockView | null) =>
  a === b ||
  (a !== null &&
    b !== null &&
    a.agent === b.agent &&
    a.ttlSeconds === b.ttlSeconds &&
    a.version === b.version &&
    a.lockedAtMs === b.lockedAtMs &&
    a.expiresAtMs === b.expiresAtMs);

const activeLock = (state: DeviceState): LockView | null => {
  if (!state.row?.active) return null;
  const { active: _, ...lock } = state.row;
  return lock;
};

/**
 * One step of an operation, in a serial order. A refusal is two steps: the conditional statement
 * (`main`) and the read that reports the lock as it is now (`current`), which the store runs as a
 * second statement and so may see later operations.
 */
type Step = { index: number; part: "main" | "current" };

/**
 * Applies one step to `state` if the answer agrees with the model; `null` when it cannot.
 * `floor` is the largest version of any earlier batch: every new version must exceed it.
 */
function apply(state: DeviceState, run: Executed, part: Step["part"], floor: number): DeviceState | null {
  const { op, answer } = run;
  const active = activeLock(state);
  if (part === "current") {
    if ((answer.kind === "set" || answer.kind === "clear") && !answer.ok) {
      return sameLock(answer.current, active) ? state : null;
    }
    return null;
  }
  const newLock = (agent: string, ttlSeconds: number): DeviceState | null => {
    if (answer.kind !== "set" || !answer.ok) return null;
    const { lock } = answer;
    if (lock.agent !== agent || lock.ttlSeconds !== ttlSeconds) return null;
    if (lock.version <= state.maxVersion || lock.version <= floor) return null;
    return { row: { ...lock, active: true }, maxVersion: lock.version };
  };
  const refused = (reason: string) =>
    answer.kind !== "get" && answer.kind !== "expire" && !answer.ok && answer.reason === reason;
  switch (op.kind) {
    case "get":
      return answer.kind === "get" && sameLock(answer.lock, active) ? state : null;
    case "set":
      return newLock(op.agent, op.ttlSeconds);
    case "acquire":
      if (active) return refused("held") ? state : null;
      return newLock(op.agent, op.ttlSeconds);
    case "renew":
      if (active && active.version === run.version) return newLock(op.agent, op.ttlSeconds);
      return refused("version_mismatch") ? state : null;
    case "release":
      if (active && active.version === run.version) {
        return answer.kind === "clear" && answer.ok && answer.cleared ? { ...state, row: null } : null;
      }
      return refused("version_mismatch") ? state : null;
    case "clear":
      if (answer.kind !== "clear" || !answer.ok || answer.cleared !== (active !== null)) return null;
      return { ...state, row: null };
    case "expire":
      if (answer.kind !== "expire" || answer.existed !== (state.row !== null)) return null;
      return state.row ? { ...state, row: { ...state.row, active: false } } : state;
  }
}

const keyOf = (state: DeviceState) => JSON.stringify(state);

/**
 * Every state of one device that some serial order of `runs` (all on that device, concurrent)
 * leads to from one of `starts` while explaining every answer; empty when none does.
 */
export function linearize(starts: DeviceState[], runs: Executed[], floor: number): DeviceState[] {
  const steps: Step[] = runs.flatMap((run, index) => {
    const refusal = (run.answer.kind === "set" || run.answer.kind === "clear") && !run.answer.ok;
    return refusal
      ? [
          { index, part: "main" as const },
          { index, part: "current" as const },
        ]
      : [{ index, part: "main" as const }];
  });
  const ends = new Map<string, DeviceState>();
  const seen = new Set<string>();
  const search = (state: DeviceState, done: number) => {
    const memo = `${done}|${keyOf(state)}`;
    if (seen.has(memo)) return;
    seen.add(memo);
    if (done === (1 << steps.length) - 1) {
      ends.set(keyOf(state), state);
      return;
    }
    steps.forEach((step, at) => {
      if (done & (1 << at)) return;
      // The report of a refusal comes after the refusal itself.
      if (step.part === "current" && !(done & (1 << (at - 1)))) return;
      const run = runs[step.index];
      if (!run) return;
      const next = apply(state, run, step.part, floor);
      if (next) search(next, done | (1 << at));
    });
  };
  for (const start of starts) search(start, 0);
  return [...ends.values()];
}

/** The versions a successful set of this batch drew (to check they are all distinct). */
export function drawnVersions(runs: Executed[]): number[] {
  return runs.flatMap(({ answer }) => (answer.kind === "set" && answer.ok ? [answer.lock.version] : []));
}
