import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { MIGRATIONS_FOLDER } from "../../lib/migrate.js";

/** How many migrations `drizzle/` holds, by drizzle-kit's journal. */
export async function migrationCount(): Promise<number> {
  const journal = JSON.parse(await readFile(join(MIGRATIONS_FOLDER, "meta", "_journal.json"), "utf8")) as {
    entries: unknown[];
  };
  return journal.entries.length;
}
