import { randomUUID } from "node:crypto";
import * as fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLockStore, type LockStore } from "../lib/locks.js";
import { engines, type TestDatabase } from "./helpers/engines.js";
import { fcParams, scaledTimeoutMs } from "./helpers/fc.js";
import {
  clearAnswer,
  type DeviceState,
  drawnVersions,
  type Executed,
  linearize,
  MODEL_AGENTS,
  type ModelOp,
  setAnswer,
  view,
} from "./helpers/lock-model.js";
import { expireLock } from "./helpers/locks.js";

const DEVICES = 3;
/** A version no lock has: what a client with a made-up or long-gone token sends. */
const UNKNOWN_VERSION = 2 ** 52;

const device = fc.nat(DEVICES - 1);
const agent = fc.constantFrom(...MODEL_AGENTS);
const ttlSeconds = fc.constantFrom(600, 3600);
const pick = fc.nat(2);

const opArb: fc.Arbitrary<ModelOp> = fc.oneof(
  fc.record({ kind: fc.constant("get" as const), device }),
  fc.record({ kind: fc.constant("set" as const), device, agent, ttlSeconds }),
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("acquire" as const), device, agent, ttlSeconds }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("renew" as const), device, agent, ttlSeconds, pick }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("release" as const), device, pick }) },
  fc.record({ kind: fc.constant("clear" as const), device }),
  fc.record({ kind: fc.constant("expire" as const), device }),
);

/** Batches of at most 5 operations; the operations of a batch run at once, batches one after another. */
const historyArb = fc.array(fc.array(opArb, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 8 });

/**
 * A model check of the lock on the real database: random concurrent batches of get / set /
 * acquire (If-None-Match: *) / renew (If-Match) / release (clear If-Match) / clear / expire over a
 * few devices. For each device, some serial order of each batch must explain every answer by a
 * sequential model (so no two acquires ever overlap, a stale token never renews or releases, a
 * cleared or expired lock is gone), and versions strictly increase: along that order, across
 * batches, and never twice. fast-check shrinks a failing history to a small one.
 */
describe.each(engines)("the lock against a sequential model on $name", (engine) => {
  let database: TestDatabase;
  let store: LockStore;
  /** The largest version any earlier run saw: every version drawn later must exceed it. */
  let floor = 0;

  beforeAll(async () => {
    database = await engine.open();
    store = createLockStore(database.db, { defaultTtlSeconds: 600, maxTtlSeconds: 3600 });
  });
  afterAll(() => database?.close());

  async function execute(op: ModelOp, deviceId: string, version: number | null): Promise<Executed> {
    switch (op.kind) {
      case "get":
        return { op, version, answer: { kind: "get", lock: view(await store.get(deviceId)) } };
      case "set":
        return { op, version, answer: setAnswer(await store.set(deviceId, op)) };
      case "acquire":
        return {
          op,
          version,
          answer: setAnswer(await store.set(deviceId, { ...op, condition: { kind: "ifAbsent" } })),
        };
      case "renew":
        return {
          op,
          version,
          answer: setAnswer(
            await store.set(deviceId, { ...op, condition: { kind: "ifVersion", version: version ?? 0 } }),
          ),
        };
      case "release":
        return {
          op,
          version,
          answer: clearAnswer(await store.clear(deviceId, { kind: "ifVersion", version: version ?? 0 })),
        };
      case "clear":
        return { op, version, answer: clearAnswer(await store.clear(deviceId)) };
      case "expire":
        return { op, version, answer: { kind: "expire", existed: await expireLock(database.db, deviceId) } };
    }
  }

  it(
    "explains every concurrent batch by a serial order, with strictly increasing versions",
    async () => {
      await fc.assert(
        fc.asyncProperty(historyArb, async (batches) => {
          const deviceIds = Array.from({ length: DEVICES }, () => randomUUID());
          let states: DeviceState[][] = deviceIds.map(() => [{ row: null, maxVersion: 0 }]);
          const seenVersions: number[][] = deviceIds.map(() => []);
          const drawn = new Set<number>();
          for (const [at, batch] of batches.entries()) {
            // Tokens are picked before the batch starts: the latest seen, the one before, or unknown.
            const versions = batch.map((op) => {
              if (op.kind !== "renew" && op.kind !== "release") return null;
              const seen = seenVersions[op.device] ?? [];
              return seen[seen.length - 1 - op.pick] ?? UNKNOWN_VERSION;
            });
            const runs = await Promise.all(
              batch.map((op, i) => execute(op, deviceIds[op.device] ?? "", versions[i] ?? null)),
            );
            for (const version of drawnVersions(runs)) {
              if (drawn.has(version))
                expect.fail(`version ${version} was handed out twice in ${JSON.stringify(runs)}`);
              drawn.add(version);
            }
            const next = states.map((starts, d) =>
              linearize(
                starts,
                runs.filter((run) => run.op.device === d),
                floor,
              ),
            );
            next.forEach((ends, d) => {
              if (ends.length > 0) return;
              expect.fail(
                `No serial order explains batch ${at} on device ${d}.\n` +
                  `Before it, the model allowed: ${JSON.stringify(states[d])}\n` +
                  `Answers: ${JSON.stringify(
                    runs.filter((run) => run.op.device === d),
                    null,
                    1,
                  )}`,
              );
            });
            states = next;
            for (const run of runs) {
              const { answer } = run;
              const locks =
                answer.kind === "get"
                  ? [answer.lock]
                  : answer.kind === "set"
                    ? [answer.ok ? answer.lock : answer.current]
                    : answer.kind === "clear" && !answer.ok
                      ? [answer.current]
                      : [];
              for (const lock of locks) {
                if (!lock) continue;
                expect(lock.expiresAtMs - lock.lockedAtMs, "expiresAt = lockedAt + ttlSeconds").toBe(
                  lock.ttlSeconds * 1000,
                );
                const seen = seenVersions[run.op.device];
                if (seen && !seen.includes(lock.version)) seen.push(lock.version);
                floor = Math.max(floor, lock.version);
              }
            }
            for (const seen of seenVersions) seen.sort((a, b) => a - b);
          }
        }),
        fcParams(100),
      );
    },
    scaledTimeoutMs(90_000),
  );
});
