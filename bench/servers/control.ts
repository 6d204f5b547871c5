/** What a bench server child tells its parent over the IPC channel. */
export type ChildMessage =
  | { type: "ready"; port: number }
  | { type: "stats"; maxRssBytes: number; rssBytes: number; heapUsedBytes: number; cpuUs: number };

/** Announces `port`, answers `"stats"` (peak and current RSS, CPU time so far) and stops on `"stop"`. */
export function serveChildControl(port: number, close: () => Promise<void>): void {
  const send = (message: ChildMessage) => process.send?.(message);
  process.on("message", (message) => {
    if (message === "stats") {
      const memory = process.memoryUsage();
      const cpu = process.cpuUsage();
      send({
        type: "stats",
        // resourceUsage().maxRSS is in kilobytes: the peak resident set since the process started.
        maxRssBytes: process.resourceUsage().maxRSS * 1024,
        rssBytes: memory.rss,
        heapUsedBytes: memory.heapUsed,
        cpuUs: cpu.user + cpu.system,
      });
    } else if (message === "stop") {
      void close().finally(() => process.disconnect?.());
    }
  });
  send({ type: "ready", port });
}
