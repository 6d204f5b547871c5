import { once } from "node:events";
import { mkdir } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { serveStatic } from "@hono/node-server/serve-static";
import { Hono } from "hono";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createLockStore, type LockStore } from "../../lib/locks.js";
import { startApi } from "../client.fixtures.js";
import { migratedPglite } from "../helpers/engines.js";

/**
 * The demo page in Debian's Chromium, served from one origin while the API answers on another:
 * every API call is cross-origin and goes through CORS.
 */

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const STORAGE_KEY = "device-session-lock:device-id";
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let browser: Browser;
let page: Page;
let store: LockStore;
const cleanups: (() => Promise<unknown>)[] = [];
const consoleErrors: string[] = [];
/** Device ids the API received, in order, per request as the browser sent it. */
const sentDeviceIds: string[] = [];
let api: Awaited<ReturnType<typeof startApi>>;
let pageUrl: string;
let pageOrigin: string;

/** Serves `public/` (only) on an ephemeral port: the page's origin. */
async function startPageServer() {
  const server = serve({
    fetch: new Hono().use("/*", serveStatic({ root: "public" })).fetch,
    port: 0,
    hostname: "127.0.0.1",
  });
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

beforeAll(async () => {
  const pages = await startPageServer();
  cleanups.push(pages.close);
  const handle = await migratedPglite();
  cleanups.push(() => handle.close());
  store = createLockStore(handle.db);
  api = await startApi({
    open: async () => handle,
    env: { CORS_ORIGINS: pages.origin, MAX_SESSION_TTL: "7200", DEFAULT_SESSION_TTL: "3600" },
  });
  cleanups.push(api.close);
  pageOrigin = pages.origin;
  pageUrl = `${pages.origin}/?api=${encodeURIComponent(api.url)}`;

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  cleanups.push(() => browser.close());
  page = await browser.newPage({ viewport: { width: 900, height: 900 } });
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => consoleErrors.push(`uncaught: ${error.message}`));
  page.on("request", (request) => {
    const deviceId = request.headers()["x-device-id"];
    if (request.url().startsWith(api.url) && deviceId) sentDeviceIds.push(deviceId);
  });
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** Console errors a test expects of the page (the browser's own line for a 4xx, say). */
let expectedConsoleErrors: RegExp[] = [];

// Every test leaves the console without an error it did not expect.
afterEach(() => {
  const unexpected = consoleErrors.filter((text) => !expectedConsoleErrors.some((known) => known.test(text)));
  consoleErrors.length = 0;
  expectedConsoleErrors = [];
  expect(unexpected).toEqual([]);
});

const storedDeviceId = () => page.evaluate((key) => localStorage.getItem(key), STORAGE_KEY);

describe("demo page from another origin", () => {
  it("creates a UUID device id on first load, sends it, and shows no lock", async () => {
    await page.goto(pageUrl);
    await expect.poll(() => page.textContent("#agent")).toMatch(/^none/);
    const deviceId = await storedDeviceId();
    expect(deviceId).toMatch(UUID_V4);
    expect(await page.textContent("#device-id")).toBe(deviceId);
    expect(await page.textContent("#api-base")).toBe(api.url);
    expect(sentDeviceIds).toEqual([deviceId]);
  });

  it("sets a lock through a CORS preflight and counts down to its expiry", async () => {
    const deviceId = (await storedDeviceId()) as string;
    await page.fill("#agent-input", "scheduling");
    await page.fill("#ttl-input", "120");
    await page.click("#set");
    await expect.poll(() => page.textContent("#agent")).toBe("scheduling");
    expect(await page.textContent("#status")).toMatch(/^Lock set for scheduling \(version \d+\)\.$/);

    const lock = await store.get(deviceId);
    expect(lock).toMatchObject({ activeAgent: "scheduling", ttlSeconds: 120 });
    expect(await page.textContent("#version")).toBe(String(lock?.version));

    const seconds = async () => {
      const [minutes, rest] = ((await page.textContent("#countdown")) ?? "").split(":").map(Number);
      return (minutes ?? Number.NaN) * 60 + (rest ?? Number.NaN);
    };
    const before = await seconds();
    expect(before).toBeGreaterThan(110);
    expect(before).toBeLessThanOrEqual(120);
    await expect.poll(seconds, { timeout: 3000 }).toBeLessThan(before);

    await mkdir("test-results", { recursive: true });
    await page.screenshot({ path: "test-results/demo.png", fullPage: true });

    const methods = api.requests.map((request) => `${request.method} ${request.status}`);
    expect(methods).toContain("OPTIONS 204");
    expect(methods).toContain("PUT 200");
  });

  it("keeps the device id across a reload, and so its lock", async () => {
    const deviceId = await storedDeviceId();
    await page.reload();
    await expect.poll(() => page.textContent("#agent")).toBe("scheduling");
    expect(await storedDeviceId()).toBe(deviceId);
    expect(await page.textContent("#device-id")).toBe(deviceId);
    expect(new Set(sentDeviceIds)).toEqual(new Set([deviceId]));
  });

  it("routes a chat message to the agent that holds the lock", async () => {
    await page.fill("#message", "Tuesday at ten");
    await page.click("#chat-form button");
    await expect
      .poll(() => page.textContent("#transcript li:last-child"))
      .toBe("“Tuesday at ten” → scheduling (it holds the lock)");
  });

  it("clears the lock", async () => {
    const deviceId = (await storedDeviceId()) as string;
    await page.click("#clear");
    await expect.poll(() => page.textContent("#status")).toBe("Lock cleared.");
    expect(await page.textContent("#agent")).toMatch(/^none/);
    expect(await page.textContent("#countdown")).toBe("–");
    expect(await store.get(deviceId)).toBeNull();
    expect(api.requests.map((request) => `${request.method} ${request.status}`)).toContain("DELETE 200");
  });

  it("shows a refused set as the problem's title and detail", async () => {
    await page.fill("#ttl-input", "99999");
    await page.click("#set");
    await expect.poll(() => page.isVisible("#error")).toBe(true);
    expect(await page.textContent("#error")).toBe(
      "Invalid request body: ttlSeconds: must be at most 7200 (MAX_SESSION_TTL)",
    );
    // The clear before it said "Lock cleared."; a refused set leaves no status of its own.
    expect(await page.textContent("#status")).toBe("");
    expect(await page.getAttribute("#error", "role")).toBe("alert");
    await page.screenshot({ path: "test-results/demo-error.png", fullPage: true });
    // The browser reports the 400 itself; nothing else went to the console.
    expect(consoleErrors).toEqual([expect.stringMatching(/status of 400/)]);
    expectedConsoleErrors = [/status of 400/];

    await page.fill("#ttl-input", "60");
    await page.click("#set");
    await expect.poll(() => page.isHidden("#error")).toBe(true);
  });

  it("drops the status of a set once its lock has expired", async () => {
    await page.fill("#ttl-input", "2");
    await page.click("#set");
    await expect.poll(() => page.textContent("#status")).toMatch(/^Lock set for scheduling/);
    await expect.poll(() => page.textContent("#agent"), { timeout: 5000 }).toMatch(/^none/);
    expect(await page.textContent("#status")).toBe("");
  });
});

describe("demo page with an ?api that is not an http(s) origin", () => {
  it.each([
    "locks.example.com",
    "ftp://locks.example.com",
  ])("names the parameter for %s and sends nothing", async (given) => {
    const context = await browser.newContext();
    try {
      const bad = await context.newPage();
      const requests: string[] = [];
      bad.on("request", (request) => requests.push(request.url()));
      await bad.goto(`${pageOrigin}/?api=${encodeURIComponent(given)}`);
      await expect.poll(() => bad.isVisible("#error")).toBe(true);
      expect(await bad.textContent("#error")).toBe(
        `?api must be an http(s) origin such as https://locks.example.com, not ${given}`,
      );
      const enabled = await bad.$$eval("input, button", (controls) =>
        controls.filter((control) => !(control as HTMLInputElement).disabled).map((control) => control.id),
      );
      expect(enabled).toEqual([]);
      expect(requests.every((url) => url.startsWith(pageOrigin))).toBe(true);
    } finally {
      await context.close();
    }
  });
});

describe("demo page in a browser whose clock is an hour fast", () => {
  it("counts a lock down on the API's clock, reading it once", async () => {
    const context = await browser.newContext();
    try {
      await context.clock.install({ time: Date.now() + 3_600_000 });
      const skewed = await context.newPage();
      const deviceId = crypto.randomUUID();
      await skewed.addInitScript(({ key, id }) => localStorage.setItem(key, id), {
        key: STORAGE_KEY,
        id: deviceId,
      });
      await store.set(deviceId, { agent: "billing", ttlSeconds: 600 });
      let reads = 0;
      skewed.on("request", (request) => {
        if (request.url().startsWith(api.url) && request.method() === "GET") reads += 1;
      });
      await skewed.goto(pageUrl);
      await expect.poll(() => skewed.textContent("#agent")).toBe("billing");
      // By this browser's clock the lock ran out 50 minutes ago; by the API's it has 10 left.
      await expect.poll(() => skewed.textContent("#countdown")).toMatch(/^(9:5\d|10:00)$/);
      // Two minutes of the page's time: the countdown runs on, and nothing reads the lock again.
      await context.clock.runFor(120_000);
      await expect.poll(() => skewed.textContent("#countdown")).toMatch(/^(7:5\d|8:00)$/);
      expect(reads).toBe(1);
    } finally {
      await context.close();
    }
  });
});
