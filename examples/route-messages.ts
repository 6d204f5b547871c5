/**
 * A manager agent routing one device's conversation through the lock, over HTTP.
 *
 *   npm run dev                                  # in one terminal
 *   npx tsx examples/route-messages.ts [baseUrl] # in another; default http://localhost:3000
 *
 * "Tuesday at ten" says nothing about meetings, yet it reaches `scheduling`: that agent holds
 * the lock. Once it releases the lock, the next message is classified afresh.
 */
import { createLockClient, LockClientError } from "../lib/client.js";
import { type AgentSession, createRouter } from "../lib/router.js";

const baseUrl = process.argv[2] ?? "http://localhost:3000";

const locks = createLockClient({
  baseUrl,
  // Routing must not stop when the lock service does: answer as a fresh conversation, and say so.
  failOpen: (error) => console.warn(`lock service unavailable, routing as fresh: ${error.message}`),
});

const router = createRouter<string>({
  locks,
  ttlSeconds: 300,
  classify: (message) => (/meeting|schedule/i.test(message) ? "scheduling" : "general"),
});

type Agent = (message: string, session: AgentSession) => Promise<string>;

const agents: Record<string, Agent> = {
  async scheduling(message, session) {
    const held = session.lock ? await session.renew() : await session.take();
    if (!held.ok) return `(someone else holds this conversation: ${held.reason})`;
    // The version is the fencing token: a calendar that remembers the largest it has seen can
    // reject a write from an agent whose lock was taken over meanwhile.
    const token = held.lock.version;
    if (/thanks/i.test(message)) {
      await session.release();
      return `Booked (fencing token ${token}). Lock released.`;
    }
    return `Which day suits you? (holding the lock, fencing token ${token})`;
  },
  async general(message) {
    return `General answer to "${message}".`;
  },
};

const deviceId = crypto.randomUUID();
console.log(`device ${deviceId} against ${baseUrl}`);
try {
  for (const message of [
    "Hello!",
    "Can we schedule a meeting?",
    "Tuesday at ten",
    "Thanks, that works",
    "What's the weather?",
  ]) {
    const route = await router.route(deviceId, message);
    const agent = agents[route.agent];
    if (!agent) throw new Error(`No agent called ${route.agent}`);
    const reply = await agent(message, route.session);
    console.log(
      `${JSON.stringify(message).padEnd(30)} -> ${route.agent.padEnd(10)} (${route.via}): ${reply}`,
    );
  }
} catch (error) {
  console.error(error instanceof LockClientError ? `lock service: ${error.message}` : error);
  process.exitCode = 1;
}
