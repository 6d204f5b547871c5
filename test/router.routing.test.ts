import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLockClient, type LockClientError } from "../lib/client.js";
import type { DatabaseHandle } from "../lib/db.js";
import { createLockStore } from "../lib/locks.js";
import { createRouter, type LockBackend } from "../lib/router.js";
import { startApi } from "./client.fixtures.js";
import { migratedPglite } from "./helpers/engines.js";
import { unusedPort } from "./helpers/net.js";

// One database, reached both ways: over HTTP through the client, and in-process through the store.
let handle: DatabaseHandle;
let api: Awaited<ReturnType<typeof startApi>>;
const backends: Record<"http" | "in-process", () => LockBackend> = {
  http: () => createLockClient({ baseUrl: api.url }),
  "in-process": () => createLockStore(handle.db),
};

beforeAll(async () => {
  handle = await migratedPglite();
  api = await startApi({ open: async () => handle });
});

afterAll(async () => {
  await api?.close();
  await handle?.close();
});

/** A router whose classifier sends messages about meetings to `scheduling`, the rest to `general`. */
function routerOver(locks: LockBackend) {
  const classified: string[] = [];
  const router = createRouter<string>({
    locks,
    ttlSeconds: 300,
    classify: (message, deviceId) => {
      classified.push(`${deviceId}: ${message}`);
      return /meeting/i.test(message) ? "scheduling" : "general";
    },
  });
  return { router, classified };
}

describe.each(Object.keys(backends) as (keyof typeof backends)[])("router %s", (kind) => {
  const newDevice = () => crypto.randomUUID();

  it("sends a message of an unlocked device to the classifier", async () => {
    const { router, classified } = routerOver(backends[kind]());
    const deviceId = newDevice();
    const route = await router.route(deviceId, "book a meeting");
    expect(route).toMatchObject({ agent: "scheduling", via: "classifier" });
    expect(route.session.lock).toBeNull();
    expect(classified).toEqual([`${deviceId}: book a meeting`]);
  });

  it("sends the next messages to the agent that took the lock, without classifying", async () => {
    const { router, classified } = routerOver(backends[kind]());
    const deviceId = newDevice();
    const first = await router.route(deviceId, "book a meeting");
    const taken = await first.session.take();
    if (!taken.ok) throw new Error("take was refused");
    expect(taken.lock).toMatchObject({ activeAgent: "scheduling", ttlSeconds: 300 });

    const next = await router.route(deviceId, "Tuesday at ten");
    expect(next).toMatchObject({ agent: "scheduling", via: "lock" });
    expect(next.session.lock).toEqual(taken.lock);
    expect(classified).toHaveLength(1);
  });

  it("renews under the held version: a new, larger fencing token", async () => {
    const { router } = routerOver(backends[kind]());
    const deviceId = newDevice();
    const { session } = await router.route(deviceId, "a meeting please");
    const taken = await session.take(60);
    const renewed = await session.renew();
    if (!taken.ok || !renewed.ok) throw new Error("take or renew was refused");
    expect(renewed.lock.version).toBeGreaterThan(taken.lock.version);
    expect(renewed.lock.ttlSeconds).toBe(60);
    expect(session.lock?.version).toBe(renewed.lock.version);
  });

  it("tells a session whose version went stale that it lost the lock", async () => {
    const { router } = routerOver(backends[kind]());
    const deviceId = newDevice();
    await (await router.route(deviceId, "meeting")).session.take();
    const [a, b] = [await router.route(deviceId, "one"), await router.route(deviceId, "two")];
    expect((await b.session.renew()).ok).toBe(true);

    const stale = await a.session.renew();
    expect(stale).toMatchObject({ ok: false, reason: "version_mismatch", current: b.session.lock });
    expect(a.session.lock).toBeNull();
    expect(await a.session.release()).toEqual({ ok: true, cleared: false });
    expect((await router.route(deviceId, "three")).via).toBe("lock");
  });

  it("refuses a take while another agent holds the lock", async () => {
    const { router } = routerOver(backends[kind]());
    const deviceId = newDevice();
    const holder = router.session(deviceId, "billing");
    await holder.take();
    const result = await router.session(deviceId, "scheduling").take();
    expect(result).toMatchObject({ ok: false, reason: "held", current: { activeAgent: "billing" } });
  });

  it("keeps the lock of a session routed by it through a refused take, and releases it", async () => {
    const { router } = routerOver(backends[kind]());
    const deviceId = newDevice();
    await (await router.route(deviceId, "meeting")).session.take();
    const { via, session } = await router.route(deviceId, "Tuesday at ten");
    expect(via).toBe("lock");
    const held = session.lock;

    expect(await session.take()).toMatchObject({ ok: false, reason: "held", current: held });
    expect(session.lock).toEqual(held);
    expect(await session.release()).toEqual({ ok: true, cleared: true });
    expect((await router.route(deviceId, "hello")).via).toBe("classifier");
  });

  it("routes to the classifier again once the agent releases the lock", async () => {
    const { router } = routerOver(backends[kind]());
    const deviceId = newDevice();
    const { session } = await router.route(deviceId, "meeting");
    await session.take();
    expect(await session.release()).toEqual({ ok: true, cleared: true });
    expect(session.lock).toBeNull();
    expect(await router.route(deviceId, "what's the weather")).toMatchObject({
      agent: "general",
      via: "classifier",
    });
  });

  it("will not renew a lock the session does not hold", async () => {
    const { router } = routerOver(backends[kind]());
    const { session } = await router.route(newDevice(), "hello");
    await expect(session.renew()).rejects.toThrow(/holds no lock/);
  });
});

describe("router across HTTP and in-process", () => {
  it("routes in-process by a lock an agent took over HTTP, on the same database", async () => {
    const deviceId = crypto.randomUUID();
    const overHttp = routerOver(backends.http()).router;
    const inProcess = routerOver(backends["in-process"]()).router;
    const taken = await overHttp.session(deviceId, "scheduling").take();
    if (!taken.ok) throw new Error("take was refused");
    const route = await inProcess.route(deviceId, "anything");
    expect(route).toMatchObject({ agent: "scheduling", via: "lock" });
    expect(route.session.lock).toEqual(taken.lock);
  });

  it("routes as a fresh conversation when the service is down and the client fails open", async () => {
    const reported: LockClientError[] = [];
    const locks = createLockClient({
      baseUrl: `http://127.0.0.1:${await unusedPort()}`,
      retry: { maxAttempts: 1 },
      failOpen: (error) => reported.push(error),
    });
    const { router } = routerOver(locks);
    expect(await router.route(crypto.randomUUID(), "a meeting")).toMatchObject({
      agent: "scheduling",
      via: "classifier",
    });
    expect(reported.map((error) => error.code)).toEqual(["network_error"]);
  });
});
