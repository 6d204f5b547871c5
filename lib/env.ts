import { AGENT_NAME_PATTERN } from "./validation.js";
import * as z from "./vendor/zod-mini.js";

/**
 * The configuration, parsed once from the environment. Nothing else reads `process.env`.
 * A bad value fails with a message that names the variable and its rule.
 */

function wholeNumber(fallback: number, min: number, max: number) {
  const rule = `must be a whole number from ${min} to ${max}`;
  return z._default(
    z.pipe(
      z.string().check(z.regex(/^\d{1,15}$/, rule)),
      z.pipe(z.transform(Number), z.number().check(z.gte(min, rule), z.lte(max, rule))),
    ),
    fallback,
  );
}

function commaList(isItem: (item: string) => boolean, rule: string) {
  return z.pipe(
    z.string(),
    z.pipe(
      z.transform((value: string) =>
        value
          .split(",")
          .map((item) => item.trim())
          .filter((item) => item !== ""),
      ),
      z.array(z.string().check(z.refine(isItem, rule))).check(z.minLength(1, rule)),
    ),
  );
}

/**
 * A database URL as `URL` reads it; `null` when it is none. An empty host after a user
 * (`postgres://app:pw@/db?host=/cloudsql/…`, a socket node-postgres takes from `host`) reads as
 * localhost, which the WHATWG parser needs there.
 */
export function parseDatabaseUrl(value: string): URL | null {
  for (const candidate of [value, value.replace("@/", "@localhost/")]) {
    if (URL.canParse(candidate)) return new URL(candidate);
  }
  return null;
}

/** A scheme, a host and maybe a port: no path, no user. */
const ORIGIN_PATTERN = /^https?:\/\/[^/\\\s,?#@]+$/;
const isOrigin = (value: string) => ORIGIN_PATTERN.test(value) && URL.canParse(value);

const envSchema = z
  .object({
    DATABASE_URL: z.optional(
      z
        .string()
        .check(
          z.refine(
            (value) => /^postgres(ql)?:\/\/\S+$/.test(value) && parseDatabaseUrl(value) !== null,
            "must be a postgres:// or postgresql:// URL",
          ),
        ),
    ),
    DATABASE_DRIVER: z.optional(z.enum(["pglite", "pg", "neon"], "must be one of pglite, pg, neon")),
    PGLITE_DIR: z._default(z.string(), ".data/pglite"),
    DATABASE_CONNECT_TIMEOUT_MS: wholeNumber(3000, 100, 60_000),
    DATABASE_QUERY_TIMEOUT_MS: wholeNumber(5000, 100, 300_000),
    DATABASE_POOL_MAX: wholeNumber(10, 1, 1000),
    HEALTH_TIMEOUT_MS: wholeNumber(2000, 100, 60_000),
    DEFAULT_SESSION_TTL: wholeNumber(86_400, 1, 31_536_000),
    MAX_SESSION_TTL: wholeNumber(604_800, 1, 31_536_000),
    ALLOWED_AGENTS: z.optional(
      commaList(
        (name) => AGENT_NAME_PATTERN.test(name),
        "must be a comma-separated list of agent names (A-Z a-z 0-9 _ . : -)",
      ),
    ),
    CRON_SECRET: z.optional(z.string()),
    CORS_ORIGINS: z.optional(
      z.pipe(
        z.union([
          z.literal("*"),
          commaList(isOrigin, "must be * or a comma-separated list of origins like https://chat.example.com"),
        ]),
        // As a browser sends its `Origin`: host in lower case, no default port.
        z.transform((value) => (value === "*" ? value : value.map((origin) => new URL(origin).origin))),
      ),
    ),
    PURGE_BATCH_SIZE: wholeNumber(5000, 1, 100_000),
    PURGE_TIME_BUDGET_MS: wholeNumber(20_000, 100, 900_000),
    PORT: wholeNumber(3000, 0, 65_535),
  })
  // Each rule across two variables holds only when both passed their own (the checks above do
  // not stop the object's), so that a bad value is named once, for its own rule.
  .check(
    z.refine(
      (env) =>
        !(typeof env.DEFAULT_SESSION_TTL === "number" && typeof env.MAX_SESSION_TTL === "number") ||
        env.DEFAULT_SESSION_TTL <= env.MAX_SESSION_TTL,
      { message: "must not exceed MAX_SESSION_TTL", path: ["DEFAULT_SESSION_TTL"] },
    ),
    z.refine(
      (env) =>
        env.DATABASE_URL !== undefined ||
        env.DATABASE_DRIVER === undefined ||
        env.DATABASE_DRIVER === "pglite",
      {
        message: "must be pglite or unset while DATABASE_URL is unset",
        path: ["DATABASE_DRIVER"],
      },
    ),
  );

/** The validated configuration. */
export type Env = z.infer<typeof envSchema>;

/** Thrown when a variable has a bad value; the message names it. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/**
 * Parses an environment (by default `process.env`). Empty strings count as unset.
 * @throws ConfigError naming every bad variable and its rule.
 */
export function parseEnv(source: Record<string, string | undefined> = process.env): Env {
  const present = Object.fromEntries(Object.entries(source).filter(([, value]) => value !== ""));
  const result = envSchema.safeParse(present);
  if (result.success) return result.data;
  const problems = [
    ...new Set(result.error.issues.map((issue) => `${String(issue.path[0])} ${issue.message}`)),
  ];
  throw new ConfigError(`Invalid environment: ${problems.join("; ")}`);
}

let cached: Env | undefined;

/** The process environment, parsed on first use. */
export function env(): Env {
  cached ??= parseEnv();
  return cached;
}
