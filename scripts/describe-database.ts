import type { Driver } from "../lib/db.js";
import type { Env } from "../lib/env.js";

/** Query parameters that node-postgres reads as passwords. */
const PASSWORD_PARAMETERS = ["password", "sslpassword"];

/** Where the database is, for a person: the URL without its passwords, or the PGlite folder. */
export function describeDatabase(env: Env, driver: Driver): string {
  if (driver === "pglite" || !env.DATABASE_URL) return `embedded PGlite at ${env.PGLITE_DIR}`;
  const url = new URL(env.DATABASE_URL);
  if (url.password) url.password = "****";
  for (const name of PASSWORD_PARAMETERS) {
    if (url.searchParams.has(name)) url.searchParams.set(name, "****");
  }
  return `${driver === "neon" ? "Neon (serverless driver)" : "Postgres (node-postgres)"} at ${url.toString()}`;
}
