import { describe, expect, it } from "vitest";
import { ConfigError, parseEnv } from "../lib/env.js";

/** The message `parseEnv` throws for `source`, or a failure when it parses. */
function messageFor(source: Record<string, string>): string {
  try {
    parseEnv(source);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
  throw new Error(`parseEnv accepted ${JSON.stringify(source)}`);
}

describe("parseEnv", () => {
  it("gives the contract's defaults for an empty environment, and treats empty strings as unset", () => {
    const expected = {
      PGLITE_DIR: ".data/pglite",
      DEFAULT_SESSION_TTL: 86_400,
      MAX_SESSION_TTL: 604_800,
      PURGE_BATCH_SIZE: 5000,
      PURGE_TIME_BUDGET_MS: 20_000,
      PORT: 3000,
    };
    expect(parseEnv({})).toMatchObject(expected);
    expect(parseEnv({ DEFAULT_SESSION_TTL: "", PORT: "", DATABASE_URL: "" })).toMatchObject(expected);
    expect(parseEnv({}).DATABASE_URL).toBeUndefined();
  });

  it.each([
    ["MAX_SESSION_TTL", { MAX_SESSION_TTL: "-5" }, "must be a whole number from 1 to 31536000"],
    [
      "DEFAULT_SESSION_TTL",
      { DEFAULT_SESSION_TTL: "soon", MAX_SESSION_TTL: "100" },
      "must be a whole number",
    ],
    ["PURGE_BATCH_SIZE", { PURGE_BATCH_SIZE: "0" }, "must be a whole number from 1 to 100000"],
    ["DATABASE_URL", { DATABASE_URL: "mysql://x/y" }, "must be a postgres:// or postgresql:// URL"],
    [
      "DATABASE_URL",
      { DATABASE_URL: "postgres://host:abc/db" },
      "must be a postgres:// or postgresql:// URL",
    ],
    ["DATABASE_URL", { DATABASE_URL: "postgres://[::1/db" }, "must be a postgres:// or postgresql:// URL"],
    ["DATABASE_DRIVER", { DATABASE_DRIVER: "sqlite" }, "must be one of pglite, pg, neon"],
  ])("names %s once, with its own rule, for a bad value", (name, source, rule) => {
    const message = messageFor(source);
    expect(message).toContain(`${name} ${rule}`);
    // One problem only: a bad value does not also fail the rules that compare it to another.
    expect(message.split("; ")).toHaveLength(1);
  });

  it("refuses a DEFAULT_SESSION_TTL above MAX_SESSION_TTL, naming both", () => {
    expect(messageFor({ DEFAULT_SESSION_TTL: "200", MAX_SESSION_TTL: "100" })).toBe(
      "Invalid environment: DEFAULT_SESSION_TTL must not exceed MAX_SESSION_TTL",
    );
    expect(parseEnv({ DEFAULT_SESSION_TTL: "100", MAX_SESSION_TTL: "100" }).DEFAULT_SESSION_TTL).toBe(100);
  });

  it("refuses the pg and neon drivers without DATABASE_URL, and takes pglite without it", () => {
    for (const driver of ["pg", "neon"]) {
      expect(messageFor({ DATABASE_DRIVER: driver })).toBe(
        "Invalid environment: DATABASE_DRIVER must be pglite or unset while DATABASE_URL is unset",
      );
      const url = "postgres://postgres@127.0.0.1:5432/test";
      expect(parseEnv({ DATABASE_DRIVER: driver, DATABASE_URL: url }).DATABASE_DRIVER).toBe(driver);
    }
    expect(parseEnv({ DATABASE_DRIVER: "pglite" }).DATABASE_DRIVER).toBe("pglite");
  });

  it.each([
    ["https://chat.example.com:99999", "a port out of range"],
    ["https://[::1", "an unclosed IPv6 bracket"],
    ["https://chat.example.com/", "a path"],
    ["https://user@chat.example.com", "a user"],
    ["https://chat.example.com\\evil", "a backslash, which URL reads as a path"],
  ])("refuses the origin %s in CORS_ORIGINS (%s)", (origin) => {
    expect(messageFor({ CORS_ORIGINS: `https://ok.example.com,${origin}` })).toBe(
      "Invalid environment: CORS_ORIGINS must be * or a comma-separated list of origins like https://chat.example.com",
    );
  });

  it("takes a DATABASE_URL with a socket in place of a host, as node-postgres does", () => {
    const url = "postgres://app:secret@/locks?host=/cloudsql/project:region:instance";
    expect(parseEnv({ DATABASE_URL: url }).DATABASE_URL).toBe(url);
  });

  it("names every bad variable when there are several", () => {
    const message = messageFor({ PORT: "http", CORS_ORIGINS: "chat.example.com", PURGE_BATCH_SIZE: "1e3" });
    expect(message.replace("Invalid environment: ", "").split("; ").sort()).toEqual([
      "CORS_ORIGINS must be * or a comma-separated list of origins like https://chat.example.com",
      "PORT must be a whole number from 0 to 65535",
      "PURGE_BATCH_SIZE must be a whole number from 1 to 100000",
    ]);
  });
});
