import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DatabaseHandle, isDatabaseUnavailable } from "../lib/db.js";
import { ApiError, type ErrorCode } from "../lib/errors.js";
import { createLockStore, type LockStore } from "../lib/locks.js";
import { connect, engines, type TestDatabase } from "./helpers/engines.js";
import { countRows } from "./helpers/locks.js";
import { startTcpProxy, type TcpProxy } from "./helpers/tcp-proxy.js";

/** Valid, and random per file; no invalid call may leave a row for it. */
const VALID_ID = randomUUID();

const badDeviceIds: [label: string, deviceId: string][] = [
  ["empty", ""],
  ["the nil UUID", "00000000-0000-0000-0000-000000000000"],
  ["braces", `{${VALID_ID}}`],
  ["urn:uuid:", `urn:uuid:${VALID_ID}`],
  ["no hyphens", VALID_ID.replaceAll("-", "")],
  ["two ids", `${VALID_ID},${randomUUID()}`],
  ["two ids with a space", `${VALID_ID} ${randomUUID()}`],
  ["a trailing newline", `${VALID_ID}\n`],
  ["a leading space", ` ${VALID_ID}`],
  ["a non-hex digit", `${VALID_ID.slice(0, -1)}g`],
  ["hyphens in the wrong places", "7d4f1c2e9-b3a-4c5d-8e6f-0a1b2c3d4e5f"],
];

const badAgents: [label: string, agent: string][] = [
  ["empty", ""],
  ["51 characters", "a".repeat(51)],
  ["starting with a hyphen", "-scheduling"],
  ["starting with an underscore", "_scheduling"],
  ["a space", "sched uling"],
  ["a slash", "sched/uling"],
  ["a non-ASCII letter", "schédule"],
];

const MAX_TTL_SECONDS = 3600;
const badTtls: [label: string, ttlSeconds: number][] = [
  ["zero", 0],
  ["negative", -5],
  ["fractional", 1.5],
  ["one over the maximum", MAX_TTL_SECONDS + 1],
  ["NaN", Number.NaN],
  ["infinite", Number.POSITIVE_INFINITY],
];

type Call = [label: string, code: ErrorCode, call: (store: LockStore) => Promise<unknown>];

/** Every invalid call, with the error code it must be rejected with. */
const invalidCalls: Call[] = [
  ...badDeviceIds.flatMap(([label, deviceId]): Call[] => [
    [`get with ${label} device id`, "invalid_device_id", (store) => store.get(deviceId)],
    [
      `set with ${label} device id`,
      "invalid_device_id",
      (store) => store.set(deviceId, { agent: "scheduling" }),
    ],
    [`clear with ${label} device id`, "invalid_device_id", (store) => store.clear(deviceId)],
  ]),
  ...badAgents.map(
    ([label, agent]): Call => [
      `set with an agent name with ${label}`,
      "invalid_body",
      (store) => store.set(VALID_ID, { agent }),
    ],
  ),
  ...badTtls.map(
    ([label, ttlSeconds]): Call => [
      `set with a ${label} TTL`,
      "invalid_body",
      (store) => store.set(VALID_ID, { agent: "scheduling", ttlSeconds }),
    ],
  ),
  [
    "set with an agent that is not allowed",
    "agent_not_allowed",
    (store) => store.set(VALID_ID, { agent: "billing" }),
  ],
  [
    "set under ifAbsent with an agent name with a leading space",
    "invalid_body",
    (store) => store.set(VALID_ID, { agent: " scheduling", condition: { kind: "ifAbsent" } }),
  ],
  ["clear with ifAbsent", "invalid_precondition", (store) => store.clear(VALID_ID, { kind: "ifAbsent" })],
  ...(
    [
      ["fractional", 1.5],
      ["NaN", Number.NaN],
      ["negative", -1],
      ["past 2^53", 1e20],
    ] as const
  ).flatMap(([label, version]): Call[] => [
    [
      `set under ifVersion with a ${label} version`,
      "invalid_precondition",
      (store) => store.set(VALID_ID, { agent: "scheduling", condition: { kind: "ifVersion", version } }),
    ],
    [
      `clear under ifVersion with a ${label} version`,
      "invalid_precondition",
      (store) => store.clear(VALID_ID, { kind: "ifVersion", version }),
    ],
  ]),
];

const storeOptions = {
  defaultTtlSeconds: 600,
  maxTtlSeconds: MAX_TTL_SECONDS,
  allowedAgents: ["scheduling", "billing-lead"],
};

async function rejection(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(
    () => null,
    (caught: unknown) => caught,
  );
  if (!(error instanceof ApiError)) throw new Error(`Expected an ApiError, got ${String(error)}`);
  return error;
}

describe.each(engines)("invalid input on $name", (engine) => {
  let database: TestDatabase;
  let store: LockStore;

  beforeAll(async () => {
    database = await engine.open();
    store = createLockStore(database.db, storeOptions);
  });
  afterAll(async () => {
    await database?.close();
  });

  it.each(invalidCalls)("rejects %s (%s) and leaves the table untouched", async (_, code, call) => {
    const rowsBefore = await countRows(database.db);

    expect((await rejection(call(store))).code).toBe(code);

    expect(await countRows(database.db)).toBe(rowsBefore);
    expect(await store.get(VALID_ID)).toBeNull();
  });

  it("refuses a store whose TTLs and purge limits the database's integers cannot hold", async () => {
    expect(() => createLockStore(database.db, { maxTtlSeconds: 3e9 })).toThrow(/maxTtlSeconds must be/);
    await expect(store.purgeExpired({ batchSize: 2 ** 31, timeBudgetMs: 1000 })).rejects.toThrow(
      /batchSize must be a whole number from 1 to 2147483647/,
    );
    await expect(store.purgeExpired({ batchSize: 10, timeBudgetMs: Number.NaN })).rejects.toThrow(
      /timeBudgetMs must be a finite number/,
    );
  });

  it("accepts the boundaries: a 50-character agent, TTLs of 1 and the maximum, an allowed agent", async () => {
    const open = createLockStore(database.db, { ...storeOptions, allowedAgents: undefined });
    const longest = `a${"b".repeat(49)}`;

    expect(await open.set(randomUUID(), { agent: longest, ttlSeconds: 1 })).toMatchObject({ ok: true });
    expect(await open.set(randomUUID(), { agent: "x.y:z_0-9", ttlSeconds: MAX_TTL_SECONDS })).toMatchObject({
      ok: true,
    });
    expect(await store.set(randomUUID(), { agent: "billing-lead" })).toMatchObject({ ok: true });
  });
});

/**
 * "Before any SQL", proved on the network drivers: the store's database is a silent TCP proxy that
 * counts connections. An invalid call must fail at once with its code and open none; a valid call,
 * as a control, does connect (and then times out).
 */
describe.each(["pg", "neon"] as const)("invalid input on the %s driver, before any SQL", (driver) => {
  let proxy: TcpProxy;
  let handle: DatabaseHandle;
  let store: LockStore;

  beforeAll(async () => {
    proxy = await startTcpProxy({ host: "127.0.0.1", port: 9 }, "blackhole");
    handle = await connect(driver, `postgres://postgres@127.0.0.1:${proxy.port}/none`, {
      connectTimeoutMs: 300,
      queryTimeoutMs: 300,
    });
    store = createLockStore(handle.db, storeOptions);
  });
  afterAll(async () => {
    await handle?.close();
    await proxy?.close();
  });

  it("rejects every invalid call without opening a connection", async () => {
    const connectionsBefore = proxy.acceptedConnections;
    for (const [label, code, call] of invalidCalls) {
      const error = await rejection(call(store));
      expect({ label, code: error.code }).toEqual({ label, code });
    }

    expect(proxy.acceptedConnections).toBe(connectionsBefore);
  });

  it("does connect for a valid call (so the count above means something)", async () => {
    const connectionsBefore = proxy.acceptedConnections;
    const error = await store.get(randomUUID()).catch((caught: unknown) => caught);

    expect(isDatabaseUnavailable(error)).toBe(true);
    expect(proxy.acceptedConnections).toBeGreaterThan(connectionsBefore);
  });
});

describe("store limits that make no sense", () => {
  it("refuses a default TTL above the maximum when the store is built", async () => {
    const [pglite] = engines;
    const database = await pglite?.open();
    if (!database) throw new Error("no engine");
    try {
      expect(() => createLockStore(database.db, { defaultTtlSeconds: 7200, maxTtlSeconds: 3600 })).toThrow(
        /defaultTtlSeconds/,
      );
      const store = createLockStore(database.db);
      await expect(store.purgeExpired({ batchSize: 0, timeBudgetMs: 1000 })).rejects.toThrow(/batchSize/);
    } finally {
      await database.close();
    }
  });
});
