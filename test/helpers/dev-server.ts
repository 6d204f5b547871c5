import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { CRON_SECRET } from "./routes.js";

/** `npm run dev` running as a child process. */
export type DevServer = {
  child: ChildProcess;
  url: string;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** Whether it is still running. */
  alive(): boolean;
  /** Sends `signal` and waits for the exit; resolves with the exit code and the signal. */
  kill(signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
};

/**
 * `scripts/dev.ts` (what `npm run dev` runs) as a child process with `vars` on top of this
 * process's environment, without its DATABASE_URL; its stdout and stderr piped.
 */
export function spawnDev(vars: Record<string, string>): ChildProcess {
  const { DATABASE_URL: _, ...inherited } = process.env;
  return spawn(process.execPath, ["--import", "tsx", "scripts/dev.ts"], {
    env: { ...inherited, ...vars },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/**
 * Starts `scripts/dev.ts` (what `npm run dev` runs) on a free port with `vars` on top of this
 * process's environment (without its DATABASE_URL), and resolves once it listens.
 * @param startTimeoutMs give up (and kill it) after this. @default 60000
 */
export async function startDevServer(
  vars: Record<string, string>,
  startTimeoutMs = 60_000,
): Promise<DevServer> {
  const child = spawnDev({ PORT: "0", CRON_SECRET, ...vars });
  let output = "";
  child.stderr?.on("data", (chunk) => {
    output += chunk;
  });
  child.stdout?.on("data", (chunk) => {
    output += chunk;
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const check = () => {
        const match = /listening on (http:\/\/\S+)/.exec(output);
        if (match?.[1]) resolve(match[1]);
      };
      child.stdout?.on("data", check);
      child.once("exit", (code) => reject(new Error(`dev server exited with ${code}: ${output}`)));
      timer = setTimeout(
        () => reject(new Error(`dev server did not listen in time: ${output}`)),
        startTimeoutMs,
      );
    });
    return {
      child,
      url,
      output: () => output,
      alive: () => child.exitCode === null && child.signalCode === null,
      async kill(signal) {
        if (child.exitCode !== null || child.signalCode !== null) {
          return { code: child.exitCode, signal: child.signalCode };
        }
        const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
        child.kill(signal);
        const [code, exitSignal] = await exited;
        return { code, signal: exitSignal };
      },
    };
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
