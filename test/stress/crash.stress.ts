import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, startDevServer } from "../helpers/dev-server.js";
import { networkEngines, type TestDatabase } from "../helpers/engines.js";
import { newDeviceId } from "../helpers/routes.js";

/**
 * Crash safety: `npm run dev` on Postgres (DATABASE_URL) is killed with SIGKILL in the middle of
 * traffic, several times, and restarted on the same database. Every lock write that was answered
 * 200 must still be there (or be replaced only by the one request that was in flight on that
 * device when the process died), and no row may be half-written: `expires_at = locked_at +
 * session_ttl`, versions unique and within the sequence. Needs TEST_DATABASE_URL.
 */
const pg = networkEngines.find((engine) => engine.name === "pg");
const CYCLES = 5;
const WORKERS = 12;
const DEVICES_PER_WORKER = 3;
/** Kill once this many writes of the cycle were acknowledged. */
const ACKS_BEFORE_KILL = 150;

type State = { agent: string; version: number } | null;
type Op =
  | { kind: "put"; agent: string; condition: "none" | "absent" | "version"; version?: number }
  | { kind: "delete"; condition: "none" | "version"; version?: number };
type Device = { id: string; acked: State; inDoubt: Op | null };

const AGENTS = ["scheduling", "billing", "support", "sales"];
const pickAgent = () => AGENTS[Math.floor(Math.random() * AGENTS.length)] ?? "scheduling";

function nextOp(device: Device): Op {
  const roll = Math.random();
  const version = device.acked?.version;
  if (roll < 0.35) return { kind: "put", agent: pickAgent(), condition: "none" };
  if (roll < 0.55) return { kind: "put", agent: pickAgent(), condition: "absent" };
  if (roll < 0.75 && version !== undefined)
    return { kind: "put", agent: pickAgent(), condition: "version", version };
  if (roll < 0.87 && version !== undefined) return { kind: "delete", condition: "version", version };
  return { kind: "delete", condition: "none" };
}

/** The states a device may be in after its acknowledged state and one unacknowledged request. */
function allowed(device: Device, observed: State): boolean {
  const same = (a: State, b: State) =>
    a === null ? b === null : b !== null && a.agent === b.agent && a.version === b.version;
  if (same(device.acked, observed)) return true;
  const op = device.inDoubt;
  if (!op) return false;
  const wouldApply =
    op.condition === "none" ||
    (op.condition === "absent" && device.acked === null) ||
    (op.condition === "version" && device.acked?.version === op.version);
  if (!wouldApply) return false;
  if (op.kind === "delete") return observed === null;
  return observed !== null && observed.agent === op.agent && observed.version > (device.acked?.version ?? 0);
}

describe.skipIf(!pg)("a dev server killed with SIGKILL mid-traffic on Postgres", () => {
  let database: TestDatabase;
  let server: DevServer | undefined;
  const devices: Device[] = Array.from({ length: WORKERS * DEVICES_PER_WORKER }, () => ({
    id: newDeviceId(),
    acked: null,
    inDoubt: null,
  }));

  beforeAll(async () => {
    database = (await pg?.open()) as TestDatabase;
  });
  afterAll(async () => {
    await server?.kill("SIGKILL");
    await database?.close();
  });

  const start = () => startDevServer({ DATABASE_URL: database.url ?? "" });

  async function send(url: string, device: Device, op: Op): Promise<Response> {
    const headers: Record<string, string> = { "X-Device-ID": device.id };
    if (op.condition === "absent") headers["If-None-Match"] = "*";
    if (op.condition === "version") headers["If-Match"] = `"${op.version}"`;
    if (op.kind === "delete") {
      return fetch(`${url}/api/session-lock`, {
        method: "DELETE",
        headers,
        signal: AbortSignal.timeout(10_000),
      });
    }
    headers["Content-Type"] = "application/json";
    return fetch(`${url}/api/session-lock`, {
      method: "PUT",
      headers,
      body: JSON.stringify({ agent: op.agent, ttlSeconds: 3600 }),
      signal: AbortSignal.timeout(10_000),
    });
  }

  /** Runs traffic until the server dies under it; returns acknowledged writes and any unexpected answers. */
  async function traffic(url: string, onAck: () => void): Promise<string[]> {
    const failures: string[] = [];
    const worker = async (w: number) => {
      const own = devices.slice(w * DEVICES_PER_WORKER, (w + 1) * DEVICES_PER_WORKER);
      for (let round = 0; ; round++) {
        const device = own[round % own.length] as Device;
        const op = nextOp(device);
        let response: Response;
        let body: { activeAgent?: string | null; version?: number | null; current?: typeof body };
        try {
          response = await send(url, device, op);
          body = await response.json();
        } catch {
          // The process died with this request in flight: it may or may not have committed.
          device.inDoubt = op;
          return;
        }
        if (response.status === 200) {
          device.acked =
            op.kind === "delete"
              ? null
              : { agent: body.activeAgent as string, version: body.version as number };
          onAck();
        } else if (response.status === 412) {
          const current = body.current;
          device.acked =
            current?.activeAgent && typeof current.version === "number"
              ? { agent: current.activeAgent, version: current.version }
              : null;
        } else
          failures.push(`${device.id} ${JSON.stringify(op)}: ${response.status} ${JSON.stringify(body)}`);
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
    return failures;
  }

  async function integrity() {
    const result = (await database.db.execute(sql`
      select count(*)::int as rows,
        count(*) filter (where expires_at <> locked_at + make_interval(secs => session_ttl))::int as torn,
        (count(*) - count(distinct version))::int as duplicate_versions,
        count(*) filter (where version > (select last_value from conversation_states_version_seq))::int as beyond_sequence,
        count(*) filter (where session_ttl <> 3600 or locked_at > now())::int as odd
      from conversation_states`)) as { rows: Record<string, number>[] };
    return result.rows[0];
  }

  it(`keeps every acknowledged lock and no half-written row across ${CYCLES} kills`, async () => {
    const summary: Record<string, number>[] = [];
    server = await start();
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const current = server;
      let acks = 0;
      let killed: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
      const failures = await traffic(current.url, () => {
        acks += 1;
        if (acks === ACKS_BEFORE_KILL) killed = current.kill("SIGKILL");
      });
      expect(failures).toEqual([]);
      expect((await killed)?.signal).toBe("SIGKILL");
      const inDoubt = devices.filter((device) => device.inDoubt).length;

      server = await start();
      const restarted = server;
      let lost = 0;
      /** Requests in flight at the kill that had committed all the same (answered or not). */
      let committedInFlight = 0;
      for (const device of devices) {
        const response = await fetch(`${restarted.url}/api/session-lock`, {
          headers: { "X-Device-ID": device.id },
        });
        expect(response.status).toBe(200);
        const body = await response.json();
        const observed: State =
          body.activeAgent === null ? null : { agent: body.activeAgent, version: body.version };
        const ackedBefore = JSON.stringify(device.acked);
        if (device.inDoubt && JSON.stringify(observed) !== ackedBefore) committedInFlight += 1;
        if (!allowed(device, observed)) {
          lost += 1;
          expect.fail(
            `device ${device.id}: acknowledged ${JSON.stringify(device.acked)}, in flight ${JSON.stringify(device.inDoubt)}, found ${JSON.stringify(observed)}`,
          );
        }
        device.acked = observed;
        device.inDoubt = null;
      }
      const checks = await integrity();
      expect(checks).toMatchObject({ torn: 0, duplicate_versions: 0, beyond_sequence: 0, odd: 0 });
      expect(checks?.rows).toBe(devices.filter((device) => device.acked !== null).length);
      summary.push({ cycle, acks, inDoubt, committedInFlight, lost, rows: checks?.rows ?? 0 });
    }
    // The last one, which only served the checks, stops cleanly.
    expect((await server.kill("SIGINT")).code).toBe(0);
    server = undefined;
    console.log(`crash safety: ${JSON.stringify(summary)}`);
  }, 170_000);
});
