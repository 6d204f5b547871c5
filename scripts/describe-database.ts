import type { Driver } from "../lib/db.js";
import { type Env, parseDatabaseUrl } from "../lib/env.js";

/** Query parameters that node-postgres reads as passwords. */
const PASSWORD_PARAMETERS = ["password", "sslpassword"];

/** Where the database is, for a person: the URL without its passwords, or the PGlite folder. */
export function describeDatabase(env: Env, driver: Driver): string {
  if (driver === "pglite" || !env.DATABASE_URL) return `embedded PGlite at ${env.PGLITE_DIR}`;
  const url = parseDatabaseUrl(env.DATABASE_URL);
  if (!url) return `${driver} at a URL that does not parse`;
  if (url.password) url.password = "****";
  for (const name of PASSWORD_PARAMETERS) {
    if (url.searchParams.has(name)) url.searchParams.set(name, "****");
  }
  // The host it read as localhost is empty in the URL: shown as given.
  const shown = env.DATABASE_URL.includes("@/")
    ? url.toString().replace("@localhost/", "@/")
    : url.toString();
  return `${driver === "neon" ? "Neon (serverless driver)" : "Postgres (node-postgres)"} at ${shown}`;
}
