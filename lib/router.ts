/**
 * Routing for the manager agent: a device's message goes to the agent that holds its lock,
 * otherwise to the caller's classifier. The sub-agent it picked gets a session through which it
 * takes, renews and releases the lock, and whose `lock.version` it can pass on as a fencing token.
 */
import type { ClearResult, Lock, LockStore, SetResult } from "./locks.js";

/**
 * The three lock operations the router needs. A `LockStore` (in-process, on the same database)
 * and a `LockClient` (over HTTP, from `lib/client.ts`) both are one.
 */
export type LockBackend = Pick<LockStore, "get" | "set" | "clear">;

/** Picks an agent for a message that no lock routes: the start of a fresh conversation. */
export type Classifier<Message> = (message: Message, deviceId: string) => string | Promise<string>;

export type RouterOptions<Message> = {
  locks: LockBackend;
  classify: Classifier<Message>;
  /** How long a lock taken through a session lives. @default undefined (the backend's default) */
  ttlSeconds?: number;
};

/** Where a message goes, and the session its agent works through. */
export type Route = {
  agent: string;
  /** `lock`: the agent holds the device's lock; `classifier`: a fresh conversation. */
  via: "lock" | "classifier";
  session: AgentSession;
};

/** One agent's hold on one device's lock, for the span of handling a message. */
export type AgentSession = {
  readonly deviceId: string;
  readonly agent: string;
  /**
   * The lock this agent holds, as far as this session knows (the one routing found, or the
   * result of the last take or renew); `null` when it holds none. `lock.version` is the fencing token.
   */
  readonly lock: Lock | null;
  /**
   * Takes the lock if no agent holds it (`If-None-Match: *`); refused with `held` otherwise, also
   * when this session holds it already (the session then keeps it: renew or release it).
   */
  take(ttlSeconds?: number): Promise<SetResult>;
  /**
   * Extends the held lock under its version (`If-Match`), with a new version; refused with
   * `version_mismatch` when another set or clear came first or it expired.
   * @param ttlSeconds @default the held lock's own ttlSeconds
   * @throws Error when the session holds no lock: take it first
   */
  renew(ttlSeconds?: number): Promise<SetResult>;
  /** Clears the held lock under its version; `{ ok: true, cleared: false }` when it holds none. */
  release(): Promise<ClearResult>;
};

/** A router over `options.locks`. */
export function createRouter<Message>(options: RouterOptions<Message>) {
  const { locks, classify } = options;

  function session(deviceId: string, agent: string, held: Lock | null): AgentSession {
    let lock = held;
    const keep = (result: SetResult) => {
      // Refused, it still holds the lock only when the current one is that very version: a take
      // while holding it. Any other refusal means another agent's lock, or none.
      if (result.ok) lock = result.lock;
      else lock = lock && result.current?.version === lock.version ? result.current : null;
      return result;
    };
    return {
      deviceId,
      agent,
      get lock() {
        return lock;
      },
      take: async (ttlSeconds = options.ttlSeconds) =>
        keep(await locks.set(deviceId, { agent, ttlSeconds, condition: { kind: "ifAbsent" } })),
      async renew(ttlSeconds) {
        if (!lock) throw new Error(`${agent} holds no lock on ${deviceId} to renew; take it first.`);
        const condition = { kind: "ifVersion", version: lock.version } as const;
        return keep(
          await locks.set(deviceId, { agent, ttlSeconds: ttlSeconds ?? lock.ttlSeconds, condition }),
        );
      },
      async release() {
        if (!lock) return { ok: true, cleared: false };
        const version = lock.version;
        lock = null;
        return locks.clear(deviceId, { kind: "ifVersion", version });
      },
    };
  }

  return {
    /** Routes a message: to the lock's agent if one holds it, else to `classify(message)`. */
    async route(deviceId: string, message: Message): Promise<Route> {
      const held = await locks.get(deviceId);
      if (held)
        return { agent: held.activeAgent, via: "lock", session: session(deviceId, held.activeAgent, held) };
      const agent = await classify(message, deviceId);
      return { agent, via: "classifier", session: session(deviceId, agent, null) };
    },
    /** A session for `agent` on a device without routing, e.g. for a follow-up outside a message. */
    session: (deviceId: string, agent: string, lock: Lock | null = null) => session(deviceId, agent, lock),
  };
}
