import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { reroute, unusedPort } from "./net.js";

/** Where Debian's package (`apt-get install pgbouncer`) puts it. */
export const PGBOUNCER_BIN = "/usr/sbin/pgbouncer";

export type PgBouncer = {
  /** `serverUrl` with its host and port replaced by PgBouncer's. */
  url(serverUrl: string): string;
  close(): Promise<void>;
};

/**
 * Starts a real PgBouncer in front of the server of `serverUrl` (trust auth, as the test server
 * has), on a free port. In transaction mode, the Debian package's 1.18 hands each transaction any
 * server connection and knows nothing of prepared statements (Neon's 1.22 keeps them per client),
 * so a statement prepared on one connection is unknown, or already there, on the next.
 * @param poolMode @default "session"
 */
export async function startPgBouncer(
  serverUrl: string,
  poolMode: "session" | "transaction" = "session",
): Promise<PgBouncer> {
  if (!existsSync(PGBOUNCER_BIN)) {
    throw new Error(`No PgBouncer at ${PGBOUNCER_BIN}: apt-get install pgbouncer (CI does).`);
  }
  const server = new URL(serverUrl);
  const port = await unusedPort();
  const dir = await mkdtemp(join(tmpdir(), "pgbouncer-"));
  await chmod(dir, 0o755);
  const user = decodeURIComponent(server.username || "postgres");
  await writeFile(join(dir, "users.txt"), `"${user}" ""\n`);
  await writeFile(
    join(dir, "pgbouncer.ini"),
    [
      "[databases]",
      `* = host=${server.hostname} port=${server.port || 5432}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${join(dir, "users.txt")}`,
      `pool_mode = ${poolMode}`,
      "",
    ].join("\n"),
  );
  // PgBouncer will not run as root: as root (CI), it runs as the postgres user.
  const asUser = process.getuid?.() === 0 ? idsOf("postgres") : {};
  const child = spawn(PGBOUNCER_BIN, [join(dir, "pgbouncer.ini")], {
    ...asUser,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  try {
    await listening(child, port, () => stderr);
  } catch (error) {
    child.kill();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    url: (target) => reroute(target, { host: "127.0.0.1", port }),
    async close() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGINT");
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function idsOf(user: string): { uid: number; gid: number } {
  const [uid, gid] = ["-u", "-g"].map((flag) =>
    Number(execFileSync("id", [flag, user], { encoding: "utf8" })),
  );
  return { uid: uid as number, gid: gid as number };
}

/** Resolves once PgBouncer logs that it listens; rejects if it exits or takes over 10 s. */
function listening(child: ChildProcess, port: number, stderr: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`PgBouncer did not start:\n${stderr()}`)), 10_000);
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    child.once("exit", (code) => fail(new Error(`PgBouncer exited with ${code}:\n${stderr()}`)));
    child.stderr?.on("data", () => {
      if (stderr().includes(`listening on 127.0.0.1:${port}`)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}
