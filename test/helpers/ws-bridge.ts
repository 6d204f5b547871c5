import { once } from "node:events";
import { connect as tcpConnect } from "node:net";
import { type WebSocket, WebSocketServer } from "ws";

/** A local stand-in for Neon's WebSocket proxy (wsproxy): each WebSocket is piped to a TCP address. */
export type WsBridge = {
  readonly port: number;
  /**
   * The `neonConfig.wsProxy` function for this bridge: Neon's driver calls it with the database
   * host and port and opens `ws://<result>`, here `127.0.0.1:<port>/v2?address=<host>:<port>`.
   */
  wsProxy(host: string, port: number | string): string;
  /** Closes every WebSocket (and so its TCP connection) and stops listening. */
  close(): Promise<void>;
};

/**
 * Starts a bridge on an ephemeral port of 127.0.0.1. Like Neon's wsproxy it connects each
 * WebSocket to the `address=host:port` of its URL and closes one side when the other closes.
 */
export async function startWsBridge(): Promise<WsBridge> {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0, path: "/v2" });
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("The bridge has no TCP address.");
  const { port } = address;

  server.on("connection", (ws: WebSocket, request) => {
    const target = parseAddress(new URL(request.url ?? "/", "ws://bridge").searchParams.get("address"));
    if (!target) {
      ws.close(1008, "address=host:port is required");
      return;
    }
    const socket = tcpConnect(target);
    socket.setNoDelay(true);
    socket.on("data", (chunk) => ws.send(chunk));
    socket.on("error", () => ws.terminate());
    socket.on("close", () => ws.close());
    ws.on("message", (data: Buffer) => socket.write(data));
    ws.on("error", () => socket.destroy());
    ws.on("close", () => socket.destroy());
  });

  return {
    port,
    wsProxy: (host, databasePort) => `127.0.0.1:${port}/v2?address=${host}:${databasePort}`,
    async close() {
      for (const client of server.clients) client.terminate();
      await new Promise<void>((resolve, reject) =>
        server.close((error) => (error ? reject(error) : resolve())),
      );
    },
  };
}

function parseAddress(value: string | null): { host: string; port: number } | null {
  const match = value?.match(/^(.+):(\d{1,5})$/);
  if (!match?.[1] || !match[2]) return null;
  return { host: match[1], port: Number(match[2]) };
}
