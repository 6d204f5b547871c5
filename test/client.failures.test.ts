import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from "vitest";
import { createLockClient, type LockClient, type LockClientError } from "../lib/client.js";
import { type DatabaseHandle, openDatabase, queryOf } from "../lib/db.js";
import {
  databaseUnavailable,
  type Loss,
  lockAnswer,
  type Scripted,
  startApi,
  startLossyProxy,
  startScriptedServer,
  startSilentServer,
} from "./client.fixtures.js";
import { migratedPglite } from "./helpers/engines.js";
import { unusedPort } from "./helpers/net.js";

const deviceId = () => crypto.randomUUID();

/** Runs `promise` to its end and returns how long it took and what it rejected with. */
async function timed(promise: Promise<unknown>): Promise<{ elapsedMs: number; error: LockClientError }> {
  const startedAt = performance.now();
  const error = await promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (caught: LockClientError) => caught,
  );
  return { elapsedMs: performance.now() - startedAt, error };
}

describe("timeouts", () => {
  it("gives up on a server that never answers after timeoutMs", async () => {
    const silent = await startSilentServer();
    onTestFinished(() => silent.close());
    const client = createLockClient({ baseUrl: silent.url, timeoutMs: 200, retry: { maxAttempts: 1 } });
    const { elapsedMs, error } = await timed(client.get(deviceId()));
    expect(error).toMatchObject({
      name: "LockClientError",
      code: "timeout",
      status: null,
      unavailable: true,
    });
    // It waited for the timeout rather than failing at once (timers on a loaded machine drift).
    expect(elapsedMs).toBeGreaterThanOrEqual(150);
    expect(elapsedMs).toBeLessThan(1000);
  });

  it("retries a timed-out request, each with its own timeout", async () => {
    const silent = await startSilentServer();
    onTestFinished(() => silent.close());
    const client = createLockClient({ baseUrl: silent.url, timeoutMs: 150, retry: { maxAttempts: 3 } });
    const { elapsedMs, error } = await timed(client.get(deviceId()));
    expect(error).toMatchObject({ code: "timeout", attempts: 3 });
    expect(silent.requests).toBe(3);
    expect(elapsedMs).toBeGreaterThanOrEqual(3 * 150 - 60);
  });

  it("ends the whole call within maxElapsedMs, retries included", async () => {
    const silent = await startSilentServer();
    onTestFinished(() => silent.close());
    const client = createLockClient({
      baseUrl: silent.url,
      timeoutMs: 1000,
      retry: { maxAttempts: 10, maxElapsedMs: 400 },
    });
    const { elapsedMs, error } = await timed(client.get(deviceId()));
    expect(error.code).toBe("timeout");
    // Its first request alone would take timeoutMs (1000 ms) without the budget.
    expect(elapsedMs).toBeLessThan(900);
  });
});

describe("retries", () => {
  it("waits as long as Retry-After says before retrying a 503", async () => {
    const id = deviceId();
    const server = await startScriptedServer([databaseUnavailable(1), lockAnswer(id, "scheduling")]);
    onTestFinished(() => server.close());
    const client = createLockClient({ baseUrl: server.url });
    expect(await client.activeAgent(id)).toBe("scheduling");
    const [first, second] = server.seen;
    expect(server.seen).toHaveLength(2);
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(990);
    expect(second?.headers["x-device-id"]).toBe(id);
  });

  it("retries a 503 without Retry-After after a jittered backoff that doubles its cap", async () => {
    const id = deviceId();
    const server = await startScriptedServer([
      databaseUnavailable(),
      databaseUnavailable(),
      lockAnswer(id, null),
    ]);
    onTestFinished(() => server.close());
    // The jitter's draw, fixed at half: waits of half of each cap, 100 ms and then 200 ms.
    const random = vi.spyOn(Math, "random").mockReturnValue(0.5);
    onTestFinished(() => random.mockRestore());
    const client = createLockClient({ baseUrl: server.url, retry: { baseDelayMs: 200, maxDelayMs: 400 } });
    expect(await client.get(id)).toBeNull();
    const at = server.seen.map((request) => request.at);
    expect(at).toHaveLength(3);
    const gaps = [(at[1] ?? 0) - (at[0] ?? 0), (at[2] ?? 0) - (at[1] ?? 0)];
    expect(gaps[0]).toBeGreaterThanOrEqual(99);
    expect(gaps[1]).toBeGreaterThanOrEqual(199);
    // Not the cap itself (400 ms on the second), nor a Retry-After's whole second.
    expect(gaps[1]).toBeLessThan(390);
  });

  it("gives up at once when Retry-After would overrun the time budget", async () => {
    const server = await startScriptedServer([databaseUnavailable(30), lockAnswer(deviceId(), null)]);
    onTestFinished(() => server.close());
    const client = createLockClient({ baseUrl: server.url, retry: { maxElapsedMs: 2000 } });
    const { elapsedMs, error } = await timed(client.get(deviceId()));
    expect(error).toMatchObject({ code: "database_unavailable", status: 503, attempts: 1 });
    expect(error.detail).toBe("The database did not answer in time; try again shortly.");
    expect(server.seen).toHaveLength(1);
    expect(elapsedMs).toBeLessThan(1500);
  });

  it("does not retry a client error", async () => {
    const server = await startScriptedServer([
      {
        status: 400,
        headers: { "Content-Type": "application/problem+json" },
        body: JSON.stringify({ status: 400, code: "invalid_body", detail: "agent: is required", fields: [] }),
      },
      lockAnswer(deviceId(), null),
    ]);
    onTestFinished(() => server.close());
    const client = createLockClient({ baseUrl: server.url });
    const { error } = await timed(client.acquire(deviceId(), "scheduling"));
    expect(error).toMatchObject({
      code: "invalid_body",
      status: 400,
      detail: "agent: is required",
      attempts: 1,
    });
    expect(server.seen).toHaveLength(1);
  });

  it("retries a gateway error without a problem body and reports it as unexpected_response", async () => {
    const server = await startScriptedServer([{ status: 502, body: "<html>Bad Gateway</html>" }]);
    onTestFinished(() => server.close());
    const client = createLockClient({ baseUrl: server.url, retry: { maxAttempts: 2, baseDelayMs: 10 } });
    const { error } = await timed(client.clear(deviceId()));
    expect(error).toMatchObject({ code: "unexpected_response", status: 502, attempts: 2, unavailable: true });
    expect(server.seen).toHaveLength(2);
  });

  it.each([
    ["a 200 that is not JSON", { status: 200, body: "<html>a web page</html>" }],
    ["a lock that is not the contract's", { status: 200, body: JSON.stringify({ activeAgent: 7 }) }],
  ])("counts the retry in attempts when the answer after it is %s", async (_, answer: Scripted) => {
    const server = await startScriptedServer([databaseUnavailable(), answer]);
    onTestFinished(() => server.close());
    const client = createLockClient({ baseUrl: server.url, retry: { baseDelayMs: 10 } });
    const { error } = await timed(client.get(deviceId()));
    expect(error).toMatchObject({ code: "unexpected_response", status: null, attempts: 2 });
    expect(server.seen).toHaveLength(2);
  });

  it("retries a refused connection as a network error", async () => {
    const client = createLockClient({
      baseUrl: `http://127.0.0.1:${await unusedPort()}`,
      retry: { maxAttempts: 2, baseDelayMs: 10 },
    });
    const { error } = await timed(client.get(deviceId()));
    expect(error).toMatchObject({ code: "network_error", status: null, attempts: 2, unavailable: true });
    expect(error.detail).toMatch(/ECONNREFUSED/);
  });
});

describe("fail-open routing", () => {
  it("answers no lock and reports the failure when the service is unreachable", async () => {
    const reported: [LockClientError, string][] = [];
    const client = createLockClient({
      baseUrl: `http://127.0.0.1:${await unusedPort()}`,
      retry: { maxAttempts: 1 },
      failOpen: (error, id) => reported.push([error, id]),
    });
    const id = deviceId();
    expect(await client.activeAgent(id)).toBeNull();
    expect(await client.get(id)).toBeNull();
    expect(reported).toHaveLength(2);
    expect(reported[0]?.[0]).toMatchObject({ code: "network_error" });
    expect(reported[0]?.[1]).toBe(id);
  });

  it("still throws on writes: an agent must know it holds no lock", async () => {
    const reported: unknown[] = [];
    const client = createLockClient({
      baseUrl: `http://127.0.0.1:${await unusedPort()}`,
      retry: { maxAttempts: 1 },
      failOpen: (error) => reported.push(error),
    });
    await expect(client.acquire(deviceId(), "scheduling")).rejects.toMatchObject({ code: "network_error" });
    expect(reported).toEqual([]);
  });

  it("does not fail open on an answer that is not the API's (a wrong baseUrl)", async () => {
    const server = await startScriptedServer([{ status: 200, body: "<html>a web page</html>" }]);
    onTestFinished(() => server.close());
    const reported: unknown[] = [];
    const client = createLockClient({ baseUrl: server.url, failOpen: (error) => reported.push(error) });
    await expect(client.get(deviceId())).rejects.toMatchObject({ code: "unexpected_response" });
    expect(reported).toEqual([]);
  });

  it("answers no lock when a silent server times out", async () => {
    const silent = await startSilentServer();
    onTestFinished(() => silent.close());
    const reported: LockClientError[] = [];
    const client = createLockClient({
      baseUrl: silent.url,
      timeoutMs: 100,
      retry: { maxAttempts: 2 },
      failOpen: (error) => reported.push(error),
    });
    expect(await client.activeAgent(deviceId())).toBeNull();
    expect(reported.map((error) => [error.code, error.attempts])).toEqual([["timeout", 2]]);
  });
});

describe("a database outage seen through the client", () => {
  /** Opens node-postgres on a port nothing listens on and proves it by a query: ECONNREFUSED. */
  async function unreachableDatabase(): Promise<DatabaseHandle> {
    const handle = await openDatabase({
      url: `postgres://nobody@127.0.0.1:${await unusedPort()}/none`,
      driver: "pg",
      connectTimeoutMs: 500,
    });
    await queryOf(handle.db)({ text: "select 1" }).finally(() => handle.close());
    throw new Error("the unreachable database answered");
  }

  it("is a typed 503 database_unavailable, and fails open for routing", async () => {
    const api = await startApi({ open: unreachableDatabase });
    onTestFinished(() => api.close());
    const strict = createLockClient({ baseUrl: api.url, retry: { maxAttempts: 1 } });
    const { error } = await timed(strict.set(deviceId(), { agent: "scheduling" }));
    expect(error).toMatchObject({ code: "database_unavailable", status: 503, unavailable: true });
    expect(error.problem).toMatchObject({ title: "Database unavailable", status: 503 });

    const reported: LockClientError[] = [];
    const routing = createLockClient({
      baseUrl: api.url,
      retry: { maxAttempts: 1 },
      failOpen: (failure) => reported.push(failure),
    });
    expect(await routing.activeAgent(deviceId())).toBeNull();
    expect(reported.map((failure) => failure.code)).toEqual(["database_unavailable"]);
  });

  it("is ridden out by a retry after Retry-After when the database comes back", async () => {
    const memory = await migratedPglite();
    onTestFinished(() => memory.close());
    let opens = 0;
    const api = await startApi({
      open: async () => (++opens === 1 ? unreachableDatabase() : memory),
    });
    onTestFinished(() => api.close());
    const client = createLockClient({ baseUrl: api.url });
    const id = deviceId();
    const result = await client.acquire(id, "scheduling");
    expect(result.ok).toBe(true);
    expect(api.requests.map((request) => request.status)).toEqual([503, 200]);
    expect(await client.activeAgent(id)).toBe("scheduling");
  });
});

describe("a write retried after its answer was lost", () => {
  let memory: DatabaseHandle;
  beforeAll(async () => {
    memory = await migratedPglite();
  });
  afterAll(() => memory.close());

  /**
   * The real API, a client straight to it (to arrange and to check the lock as the server has it)
   * and one through a proxy that loses what `lose` picks.
   */
  async function setup(lose: (index: number, method: string) => Loss) {
    const api = await startApi({ open: async () => memory });
    const proxy = await startLossyProxy(api.url, lose);
    onTestFinished(async () => {
      await proxy.close();
      await api.close();
    });
    const retry = { baseDelayMs: 10, maxDelayMs: 20 };
    return {
      direct: createLockClient({ baseUrl: api.url, retry: { maxAttempts: 1 } }),
      client: createLockClient({ baseUrl: proxy.url, retry }),
      proxy,
    };
  }
  /** Takes the device's lock for `scheduling` straight on the API. */
  async function acquired(direct: LockClient, id: string) {
    const held = await direct.acquire(id, "scheduling", 600);
    if (!held.ok) throw new Error("the first acquire was refused");
    return held.lock;
  }
  const firstAnswerLost = (index: number): Loss => (index === 0 ? "after" : "none");
  const firstRequestLost = (index: number): Loss => (index === 0 ? "before" : "none");

  it("acquires: the retry is refused by the lock the lost attempt took, which this agent can release", async () => {
    // Not reported as taken: a lock is an agent's, and another caller of this agent may hold it.
    const { direct, client, proxy } = await setup(firstAnswerLost);
    const id = deviceId();
    const taken = await client.acquire(id, "scheduling", 600);
    expect(proxy.seen).toEqual([
      { method: "PUT", loss: "after", status: 200 },
      { method: "PUT", loss: "none", status: 412 },
    ]);
    const onServer = await direct.get(id);
    expect(onServer).toMatchObject({ activeAgent: "scheduling", ttlSeconds: 600 });
    expect(taken).toEqual({ ok: false, reason: "held", current: onServer });
    if (taken.ok || !taken.current) return;
    expect(await client.release(taken.current)).toEqual({ ok: true, cleared: true });
    expect(await direct.get(id)).toBeNull();
  });

  it("renews: the retry is refused with the newer version the lost attempt made", async () => {
    const { direct, client, proxy } = await setup(firstAnswerLost);
    const id = deviceId();
    const held = await acquired(direct, id);
    const renewed = await client.renew(held);
    expect(proxy.seen.map((request) => request.status)).toEqual([200, 412]);
    const onServer = await direct.get(id);
    expect(renewed).toEqual({ ok: false, reason: "version_mismatch", current: onServer });
    expect(onServer?.version).toBeGreaterThan(held.version);
  });

  it("releases: the refused retry finds no lock left and reports it cleared", async () => {
    const { direct, client, proxy } = await setup(firstAnswerLost);
    const id = deviceId();
    const held = await acquired(direct, id);
    expect(await client.release(held)).toEqual({ ok: true, cleared: true });
    expect(proxy.seen.map((request) => [request.method, request.status])).toEqual([
      ["DELETE", 200],
      ["DELETE", 412],
    ]);
    expect(await direct.get(id)).toBeNull();
  });

  it("clears without a condition: the retry finds no lock left and answers cleared: false", async () => {
    // As the README says: the lost attempt removed the lock, and the answer cannot say which did.
    const { direct, client, proxy } = await setup(firstAnswerLost);
    const id = deviceId();
    await acquired(direct, id);
    expect(await client.clear(id)).toEqual({ ok: true, cleared: false });
    expect(proxy.seen.map((request) => [request.method, request.loss, request.status])).toEqual([
      ["DELETE", "after", 200],
      ["DELETE", "none", 200],
    ]);
    expect(await direct.get(id)).toBeNull();
  });

  it("releases: a retry that finds another lock stays refused", async () => {
    // The first request never reaches the API; meanwhile another agent has taken the device.
    const { direct, client, proxy } = await setup(firstRequestLost);
    const id = deviceId();
    const held = await acquired(direct, id);
    const billing = await direct.set(id, { agent: "billing", ttlSeconds: 600 });
    expect(await client.release(held)).toEqual({
      ok: false,
      reason: "version_mismatch",
      current: billing.ok ? billing.lock : null,
    });
    expect(proxy.seen.map((request) => [request.loss, request.status])).toEqual([
      ["before", null],
      ["none", 412],
    ]);
    expect(await direct.get(id)).toMatchObject({ activeAgent: "billing" });
  });

  it("releases: without a retry, a release that finds no lock stays refused", async () => {
    const { direct } = await setup(() => "none");
    const id = deviceId();
    const held = await acquired(direct, id);
    await direct.clear(id);
    expect(await direct.release(held)).toEqual({ ok: false, reason: "version_mismatch", current: null });
  });
});

describe("createLockClient", () => {
  it.each([
    "locks.example.com",
    "/api",
    "ftp://locks.example.com",
    "",
  ])("refuses baseUrl %j at once, naming what it needs", (baseUrl) => {
    expect(() => createLockClient({ baseUrl })).toThrow(/baseUrl must be an absolute http\(s\) URL/);
  });
});
