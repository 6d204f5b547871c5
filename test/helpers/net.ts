import { once } from "node:events";
import { createServer } from "node:net";

/** A port of 127.0.0.1 that nothing listens on (taken, then released): to listen on, or to find closed. */
export async function unusedPort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, "close");
  return port;
}

/** The same database URL with its host and port replaced, e.g. to go through a `TcpProxy` or a pooler. */
export function reroute(url: string, via: { host: string; port: number }): string {
  const rerouted = new URL(url);
  rerouted.hostname = via.host;
  rerouted.port = String(via.port);
  return rerouted.toString();
}
