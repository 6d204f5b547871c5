import { randomBytes } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { type DatabaseHandle, openDatabase } from "../../lib/db.js";
import { migrate } from "../../lib/migrate.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** A file with the data directory of a migrated, empty PGlite database (a tarball). */
    pgliteTemplate: string;
  }
}

/**
 * Opens a blank in-memory PGlite through `openDatabase`, migrates it and saves its data directory
 * to a temporary file, once per run. Starting PGlite from that file skips `initdb`, which takes
 * most of a fresh start (seconds on a busy 2-core machine).
 * @returns the file's path and how to delete it
 */
export async function createPgliteTemplate(): Promise<{ path: string; remove(): Promise<void> }> {
  const handle = await openDatabase({ pgliteDir: "memory://" });
  try {
    await migrate(handle);
    const client = handle.db as PGlite;
    const dump = await client.dumpDataDir("none");
    const path = join(tmpdir(), `dsl-pglite-template-${randomBytes(5).toString("hex")}.tar`);
    await writeFile(path, Buffer.from(await dump.arrayBuffer()));
    return { path, remove: () => rm(path, { force: true }) };
  } finally {
    await handle.close();
  }
}

/**
 * A new in-memory PGlite database started from the template file: migrated, empty, private to
 * the caller, opened as `openDatabase` opens PGlite (no options).
 */
export async function openPgliteCopy(templatePath: string): Promise<DatabaseHandle> {
  const client = await PGlite.create({ loadDataDir: new Blob([await readFile(templatePath)]) });
  return { db: client, driver: "pglite", close: () => client.close() };
}
