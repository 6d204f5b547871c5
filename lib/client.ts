/**
 * A typed client for the session-lock HTTP API, on `fetch` only (Node 20+, Vercel functions,
 * browsers). Its `get`, `set` and `clear` take and return what `LockStore` does, so code written
 * against the store runs over HTTP unchanged; `acquire`, `renew` and `release` are the usual
 * conditional calls spelled out.
 */
import type { ErrorCode } from "./errors.js";
import type { ClearResult, Condition, Lock, SetLockInput, SetResult } from "./locks.js";

export type { ClearResult, Condition, Lock, Refusal, SetResult } from "./locks.js";

/** What the client can fail with: a server's problem `code`, or one of its own. */
export type ClientErrorCode = ErrorCode | "timeout" | "network_error" | "unexpected_response";

/**
 * A call that failed: an error response (its problem+json `code`, `status` and `detail`), a
 * timeout or a network error (`status: null`). A refused condition is no error: it is a value.
 */
export class LockClientError extends Error {
  override readonly name = "LockClientError";
  readonly code: ClientErrorCode;
  /** The HTTP status, `null` when no response came. */
  readonly status: number | null;
  readonly detail: string;
  /** The whole problem body, e.g. `fields` of `invalid_body`. */
  readonly problem: Record<string, unknown> | undefined;
  /** Requests made before giving up. */
  readonly attempts: number;

  constructor(
    init: { code: ClientErrorCode; status: number | null; detail: string; problem?: Record<string, unknown> },
    attempts: number,
    cause?: unknown,
  ) {
    super(`${init.code}${init.status === null ? "" : ` (${init.status})`}: ${init.detail}`, { cause });
    this.code = init.code;
    this.status = init.status;
    this.detail = init.detail;
    this.problem = init.problem;
    this.attempts = attempts;
  }

  /** True when the service could not answer (timeout, network error, 5xx), as opposed to a bad request. */
  get unavailable(): boolean {
    return this.code === "timeout" || this.code === "network_error" || (this.status ?? 0) >= 500;
  }
}

/** How hard to try before giving up on a call. */
export type RetryOptions = {
  /** Requests in all, the first included. @default 3 */
  maxAttempts?: number;
  /** First backoff cap; each retry doubles it (full jitter: a random wait up to the cap). @default 100 */
  baseDelayMs?: number;
  /** Largest backoff cap. A `Retry-After` from the server is honoured even when longer. @default 1000 */
  maxDelayMs?: number;
  /**
   * The whole call, retries and waits included, ends within this. A retry whose wait
   * (`Retry-After` included) would overrun it is not made: the last error is thrown instead.
   * @default 5000
   */
  maxElapsedMs?: number;
};

export type LockClientOptions = {
  /** Where the API is, e.g. `https://locks.example.com` (`/api/session-lock` is appended). */
  baseUrl: string;
  /** Each request gives up after this (and is retried if time is left). @default 1500 */
  timeoutMs?: number;
  /** Retries on 502, 503, 504, timeouts and network errors. @default { maxAttempts: 3, ... } */
  retry?: RetryOptions;
  /**
   * Fail-open mode for routing. When set, `get` and `activeAgent` answer "no lock" (`null`)
   * instead of throwing when the service is unavailable (timeout, network error, 5xx), and hand
   * the error to this callback. Writes always throw: an agent must know when it holds no lock.
   * @default undefined (reads throw like writes)
   */
  failOpen?: (error: LockClientError, deviceId: string) => void;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Sent with every request, e.g. `Authorization` for a gateway in front of the API. @default {} */
  headers?: Record<string, string>;
};

/** Which refusal a failed condition means, as `LockStore` reports it. */
const REASON_BY_CONDITION = { ifAbsent: "held", ifVersion: "version_mismatch", ifPresent: "absent" } as const;
const RETRY_STATUSES = new Set([502, 503, 504]);

/** A lock as an agent holds it: enough to renew or release it under its version. */
export type HeldLock = Pick<Lock, "deviceId" | "activeAgent" | "version" | "ttlSeconds">;

export type LockClient = ReturnType<typeof createLockClient>;

/**
 * Creates a client for the API at `options.baseUrl`.
 * @throws TypeError when `baseUrl` is not an absolute http(s) URL
 */
export function createLockClient(options: LockClientOptions) {
  const url = `${apiBase(options.baseUrl)}/api/session-lock`;
  const timeoutMs = options.timeoutMs ?? 1500;
  const retry = {
    maxAttempts: options.retry?.maxAttempts ?? 3,
    baseDelayMs: options.retry?.baseDelayMs ?? 100,
    maxDelayMs: options.retry?.maxDelayMs ?? 1000,
    maxElapsedMs: options.retry?.maxElapsedMs ?? 5000,
  };
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);

  /**
   * One call: requests until an answer that is not worth retrying, or the budget is spent.
   * `attempts` above 1: the answer is to a retry, after an attempt whose outcome is unknown (a
   * timeout, a network error or a 5xx: the server may have done what it asked).
   */
  async function call(
    method: "GET" | "PUT" | "DELETE",
    deviceId: string,
    init: { condition?: Condition; body?: unknown } = {},
  ): Promise<Answer & { attempts: number }> {
    const deadline = performance.now() + retry.maxElapsedMs;
    const headers: Record<string, string> = {
      ...options.headers,
      Accept: "application/json",
      "X-Device-ID": deviceId,
      ...conditionHeaders(init.condition),
    };
    if (init.body !== undefined) headers["Content-Type"] = "application/json";
    const body = init.body === undefined ? undefined : JSON.stringify(init.body);
    for (let attempt = 1; ; attempt++) {
      const leftMs = Math.ceil(Math.min(timeoutMs, deadline - performance.now()));
      const signal = AbortSignal.timeout(Math.max(1, leftMs)); // whole milliseconds only
      const outcome = await send(() => doFetch(url, { method, headers, body, signal }), attempt);
      if (!("failure" in outcome)) return { ...outcome, attempts: attempt };
      const backoffCapMs = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1));
      const waitMs = outcome.retryAfterMs ?? Math.random() * backoffCapMs;
      if (attempt >= retry.maxAttempts || performance.now() + waitMs >= deadline) throw outcome.failure;
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }

  /** The device's active lock, `null` when there is none. */
  async function get(deviceId: string): Promise<Lock | null> {
    try {
      const { body, attempts } = await call("GET", deviceId);
      return toLock(body, attempts);
    } catch (error) {
      if (options.failOpen && error instanceof LockClientError && error.unavailable) {
        options.failOpen(error, deviceId);
        return null;
      }
      throw error;
    }
  }

  /**
   * Sets the lock; with a `condition`, only if it holds (else a refusal with the current lock).
   * A retried set may be refused by the lock its unanswered attempt made: see the README.
   */
  async function set(deviceId: string, input: SetLockInput): Promise<SetResult> {
    const { agent, ttlSeconds, condition } = input;
    const { status, body, attempts } = await call("PUT", deviceId, {
      condition,
      body: { agent, ttlSeconds },
    });
    if (status === 412) return refusal(condition, body, attempts);
    const lock = toLock(body, attempts);
    if (!lock) throw unexpected("a successful PUT answered without a lock", attempts);
    return { ok: true, lock };
  }

  /**
   * Clears the lock (`cleared: false` when there was none); with a `condition`, only if it holds.
   * A retried conditional clear refused because no lock is left succeeds (`cleared: true`): the
   * attempt whose answer was lost may have cleared it, and either way the lock it named is gone.
   * A retried clear without a condition may answer `cleared: false` for the same reason: no lock
   * is left either way.
   */
  async function clear(deviceId: string, condition?: Condition): Promise<ClearResult> {
    const { status, body, attempts } = await call("DELETE", deviceId, { condition });
    if (status === 412) {
      const refused = refusal(condition, body, attempts);
      return attempts > 1 && refused.current === null ? { ok: true, cleared: true } : refused;
    }
    if (typeof body.cleared !== "boolean") throw unexpected("a DELETE answered without `cleared`", attempts);
    return { ok: true, cleared: body.cleared };
  }

  return {
    get,
    set,
    clear,
    /** The agent holding the device's lock, or `null`: a fresh conversation. Fails open like `get`. */
    async activeAgent(deviceId: string): Promise<string | null> {
      return (await get(deviceId))?.activeAgent ?? null;
    },
    /**
     * Takes the lock only if no one holds it (`If-None-Match: *`); else `{ ok: false, reason: "held" }`.
     * After a retry, the refusal's `current` may be the lock its unanswered attempt took (README).
     */
    acquire: (deviceId: string, agent: string, ttlSeconds?: number) =>
      set(deviceId, { agent, ttlSeconds, condition: { kind: "ifAbsent" } }),
    /**
     * Extends a lock this agent holds, only if it still has that version (`If-Match`); the new lock
     * has a new version. Refused with `version_mismatch` when it changed, expired or was cleared.
     * @param ttlSeconds @default the lock's own `ttlSeconds`
     */
    renew: (lock: HeldLock, ttlSeconds: number = lock.ttlSeconds) =>
      set(lock.deviceId, {
        agent: lock.activeAgent,
        ttlSeconds,
        condition: { kind: "ifVersion", version: lock.version },
      }),
    /** Clears a lock this agent holds, only if it still has that version (`If-Match`). */
    release: (lock: HeldLock) => clear(lock.deviceId, { kind: "ifVersion", version: lock.version }),
  };
}

type Answer = { status: number; body: Record<string, unknown> };
type RetryableFailure = { failure: LockClientError; retryAfterMs: number | null };

/** `baseUrl` without trailing slashes, once it is known to be an absolute http(s) URL. */
function apiBase(baseUrl: string): string {
  const parsed = URL.canParse(baseUrl) ? new URL(baseUrl) : null;
  if (!parsed || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) {
    throw new TypeError(
      `baseUrl must be an absolute http(s) URL such as https://locks.example.com, not "${baseUrl}".`,
    );
  }
  return baseUrl.replace(/\/+$/, "");
}

/**
 * One request: the answer (2xx or 412), a failure worth retrying (502/503/504, timeout, network
 * error), or a thrown `LockClientError` for anything else.
 */
async function send(request: () => Promise<Response>, attempt: number): Promise<Answer | RetryableFailure> {
  let response: Response;
  let body: Record<string, unknown>;
  try {
    response = await request();
    body = await readBody(response, attempt);
  } catch (error) {
    if (error instanceof LockClientError) throw error;
    return { failure: transportError(error, attempt), retryAfterMs: null };
  }
  if (response.ok || response.status === 412) return { status: response.status, body };
  const failure = problemError(response.status, body, attempt);
  if (!RETRY_STATUSES.has(response.status)) throw failure;
  return { failure, retryAfterMs: parseRetryAfter(response.headers.get("Retry-After")) };
}

function conditionHeaders(condition: Condition | undefined): Record<string, string> {
  switch (condition?.kind) {
    case "ifAbsent":
      return { "If-None-Match": "*" };
    case "ifVersion":
      return { "If-Match": `"${condition.version}"` };
    case "ifPresent":
      return { "If-Match": "*" };
    default:
      return {};
  }
}

async function readBody(response: Response, attempts: number): Promise<Record<string, unknown>> {
  const text = await response.text();
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) {
      return parsed as Record<string, unknown>;
    }
  } catch {
    // Not JSON (a proxy's HTML error page, say): judged by its status below.
  }
  if (!response.ok) return {};
  throw unexpected(`a ${response.status} answer that is not a JSON object: ${text.slice(0, 100)}`, attempts);
}

function problemError(status: number, body: Record<string, unknown>, attempts: number): LockClientError {
  const isProblem = typeof body.code === "string" && typeof body.detail === "string";
  return new LockClientError(
    isProblem
      ? { code: body.code as ErrorCode, status, detail: body.detail as string, problem: body }
      : { code: "unexpected_response", status, detail: `HTTP ${status} without a problem body` },
    attempts,
  );
}

function transportError(error: unknown, attempts: number): LockClientError {
  const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
  const reason = error instanceof Error ? (error.cause instanceof Error ? error.cause : error).message : "";
  return new LockClientError(
    timedOut
      ? { code: "timeout", status: null, detail: "The lock service did not answer in time." }
      : { code: "network_error", status: null, detail: `The lock service could not be reached: ${reason}` },
    attempts,
    error,
  );
}

function unexpected(detail: string, attempts: number): LockClientError {
  return new LockClientError({ code: "unexpected_response", status: null, detail }, attempts);
}

/** `Retry-After` in milliseconds: delay-seconds or an HTTP date; `null` when absent or unreadable. */
function parseRetryAfter(value: string | null): number | null {
  if (value === null) return null;
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

function refusal(condition: Condition | undefined, body: Record<string, unknown>, attempts: number) {
  if (!condition || condition.kind === "always") {
    throw unexpected("412 to a request without a condition", attempts);
  }
  const current = toLock((body.current ?? {}) as Record<string, unknown>, attempts);
  return { ok: false as const, reason: REASON_BY_CONDITION[condition.kind], current };
}

/** The contract's representation as a `Lock` (`null` when no lock is active). */
function toLock(body: Record<string, unknown>, attempts: number): Lock | null {
  const { deviceId, activeAgent, lockedAt, expiresAt, ttlSeconds, version } = body;
  if (activeAgent === null) return null;
  if (
    typeof deviceId !== "string" ||
    typeof activeAgent !== "string" ||
    typeof lockedAt !== "string" ||
    typeof expiresAt !== "string" ||
    typeof ttlSeconds !== "number" ||
    typeof version !== "number"
  ) {
    throw unexpected("the lock representation is not the contract's", attempts);
  }
  return {
    deviceId,
    activeAgent,
    lockedAt: new Date(lockedAt),
    expiresAt: new Date(expiresAt),
    ttlSeconds,
    version,
  };
}
