import { once } from "node:events";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";

/**
 * What the proxy does with traffic.
 * - `forward`: pipes every connection to the target.
 * - `refuse`: stops listening (new connections get `ECONNREFUSED`) and resets every open one.
 * - `blackhole`: accepts connections but forwards nothing and answers nothing, like a network that
 *   silently drops packets. A connection that lost data this way stays dead after `forward`
 *   (its byte stream is broken); connections that saw no traffic meanwhile carry on.
 */
export type ProxyMode = "forward" | "refuse" | "blackhole";

/** A TCP proxy on 127.0.0.1 whose behaviour a test switches at will. */
export type TcpProxy = {
  readonly host: string;
  /** The port it listens on; it keeps this port across `refuse` and back. */
  readonly port: number;
  readonly mode: ProxyMode;
  /** Connections accepted so far, in any mode. */
  readonly acceptedConnections: number;
  /** Switches mode; resolves once the proxy behaves the new way. */
  setMode(mode: ProxyMode): Promise<void>;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
};

type Pair = { client: Socket; upstream: Socket | null; dead: boolean };

/**
 * Starts a proxy on an ephemeral port of 127.0.0.1 in front of `target`.
 * @param mode the starting mode. @default "forward"
 */
export async function startTcpProxy(
  target: { host: string; port: number },
  mode: ProxyMode = "forward",
): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let current: ProxyMode = mode;
  let acceptedConnections = 0;
  let server: Server | null = null;
  let port = 0;

  function accept(client: Socket): void {
    acceptedConnections += 1;
    const pair: Pair = { client, upstream: null, dead: current === "blackhole" };
    pairs.add(pair);
    client.setNoDelay(true);
    client.on("error", () => {});
    client.on("close", () => {
      pair.upstream?.destroy();
      pairs.delete(pair);
    });
    client.on("data", (chunk) => {
      if (current === "blackhole") pair.dead = true;
      if (!pair.dead) pair.upstream?.write(chunk);
    });
    if (pair.dead) return;
    const upstream = tcpConnect(target);
    pair.upstream = upstream;
    upstream.setNoDelay(true);
    upstream.on("error", () => client.destroy());
    upstream.on("close", () => client.destroy());
    upstream.on("data", (chunk) => {
      if (current === "blackhole") pair.dead = true;
      if (!pair.dead) client.write(chunk);
    });
  }

  async function listen(): Promise<void> {
    const listening = createServer(accept);
    listening.listen({ host: "127.0.0.1", port });
    await once(listening, "listening");
    const address = listening.address();
    if (address === null || typeof address === "string") throw new Error("The proxy has no TCP address.");
    port = address.port;
    server = listening;
  }

  async function stopListening(): Promise<void> {
    const closing = server;
    server = null;
    if (!closing) return;
    const closed = once(closing, "close");
    closing.close();
    for (const pair of pairs) {
      pair.client.resetAndDestroy();
      pair.upstream?.destroy();
    }
    pairs.clear();
    await closed;
  }

  if (mode !== "refuse") await listen();
  else {
    // Take a port now so that the address is known before the first `forward`.
    await listen();
    await stopListening();
  }

  return {
    host: "127.0.0.1",
    get port() {
      return port;
    },
    get mode() {
      return current;
    },
    get acceptedConnections() {
      return acceptedConnections;
    },
    async setMode(next) {
      current = next;
      if (next === "refuse") await stopListening();
      else if (!server) await listen();
    },
    async close() {
      current = "refuse";
      await stopListening();
    },
  };
}
