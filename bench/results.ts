import type { ColdStartResult } from "./cases/cold-start.js";
import type { HttpResult } from "./cases/http.js";
import type { InProcessResult } from "./cases/in-process.js";
import type { PurgeResult } from "./cases/purge.js";
import type { ScaleResult } from "./cases/scale.js";
import type { StatementsResult } from "./cases/statements.js";
import type { Mode } from "./config.js";

/** The machine a run measured on: absolute numbers mean little without it. */
export type Machine = {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  postgres: string;
  postgresSettings: Record<string, string>;
  redis: string | null;
  /** 1-minute load average when the run started and ended: the machine is shared. */
  loadAverage: { start: number; end: number };
};

/** Everything one run measured (`bench/results/<mode>.json`). */
export type BenchResults = {
  mode: Mode;
  startedAt: string;
  durationSeconds: number;
  command: string;
  machine: Machine;
  inProcess?: InProcessResult;
  http?: HttpResult;
  statements?: StatementsResult;
  purge?: PurgeResult;
  coldStart?: ColdStartResult;
  scale?: ScaleResult;
};
