import type { Lock, LockStore } from "../lib/locks.js";

/**
 * The floor of the `Request` → `Response` interface: a bare Web handler for `/api/session-lock`
 * over a lock store (read the header, call the store, answer JSON with the contract's headers),
 * without the product's framing: no validation of the header, request id, log line, CORS,
 * conditions, body size limit, zod or problem mapping. The product's handlers against this measure
 * their framing; this against the lib alone measures the Web interface itself.
 */
export function webFloorHandler(store: Pick<LockStore, "get" | "set" | "clear">) {
  const respond = (body: unknown, etag?: string) =>
    new Response(JSON.stringify(body), {
      headers: etag
        ? { "Content-Type": "application/json", "Cache-Control": "no-store", ETag: etag }
        : { "Content-Type": "application/json", "Cache-Control": "no-store" },
    });
  const lockBody = (deviceId: string, lock: Lock | null) => ({
    deviceId,
    activeAgent: lock?.activeAgent ?? null,
    lockedAt: lock?.lockedAt.toISOString() ?? null,
    expiresAt: lock?.expiresAt.toISOString() ?? null,
    ttlSeconds: lock?.ttlSeconds ?? null,
    version: lock?.version ?? null,
  });
  return async (request: Request): Promise<Response> => {
    const deviceId = (request.headers.get("X-Device-ID") ?? "").toLowerCase();
    if (request.method === "GET") {
      const lock = await store.get(deviceId);
      return respond(lockBody(deviceId, lock), lock ? `"${lock.version}"` : undefined);
    }
    if (request.method === "PUT") {
      const body = (await request.json()) as { agent: string; ttlSeconds?: number };
      const result = await store.set(deviceId, body);
      if (!result.ok) throw new Error("an unconditional set was refused");
      return respond(lockBody(deviceId, result.lock), `"${result.lock.version}"`);
    }
    const result = await store.clear(deviceId);
    return respond({ deviceId, cleared: result.ok && result.cleared });
  };
}
