import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { describe, expect, it, onTestFinished } from "vitest";
import { createContext } from "../lib/context.js";
import { openDatabase, queryOf } from "../lib/db.js";
import { parseEnv } from "../lib/env.js";
import { newPgliteFolder } from "./helpers/pglite.js";

describe("an embedded database's folder", () => {
  it("refuses a second open while the first is open, naming the folder, and allows it after", async () => {
    const dir = await newPgliteFolder("pglite-lock-");
    const first = await openDatabase({ pgliteDir: dir });
    await expect(openDatabase({ pgliteDir: dir })).rejects.toThrow(
      `The embedded database at ${dir} is in use by process ${process.pid}`,
    );
    await first.close();
    expect(existsSync(`${dir}.lock`)).toBe(false);

    const again = await openDatabase({ pgliteDir: dir });
    onTestFinished(() => again.close());
    expect(await queryOf(again.db)({ text: "select 1 as one" })).toEqual([{ one: 1 }]);
  });

  it("takes over the lock of a process that is gone", async () => {
    const dir = await newPgliteFolder("pglite-lock-");
    const gone = spawn(process.execPath, ["-e", ""]);
    await once(gone, "exit");
    await writeFile(`${dir}.lock`, String(gone.pid));

    const handle = await openDatabase({ pgliteDir: dir });
    onTestFinished(() => handle.close());
    expect(await queryOf(handle.db)({ text: "select 1 as one" })).toEqual([{ one: 1 }]);
  });

  it("takes over a lock with this process's own pid that no open here holds (a container's restart)", async () => {
    const dir = await newPgliteFolder("pglite-lock-");
    await writeFile(`${dir}.lock`, `${process.pid} from-an-earlier-life`);

    const handle = await openDatabase({ pgliteDir: dir });
    onTestFinished(() => handle.close());
    expect(await queryOf(handle.db)({ text: "select 1 as one" })).toEqual([{ one: 1 }]);
  });

  it("locks a folder given as PGlite's file:// too", async () => {
    const dir = await newPgliteFolder("pglite-lock-");
    const first = await openDatabase({ pgliteDir: `file://${dir}` });
    onTestFinished(() => first.close());
    await expect(openDatabase({ pgliteDir: dir })).rejects.toThrow(`is in use by process ${process.pid}`);
  });

  it("is let go when its migrations fail, so the next request finds the same failure", async () => {
    const dir = await newPgliteFolder("pglite-lock-");
    // A migrations table drizzle cannot read: every migration run fails at once.
    const setup = await openDatabase({ pgliteDir: dir });
    await queryOf(setup.db)({ text: "create schema drizzle" });
    await queryOf(setup.db)({ text: "create view drizzle.__drizzle_migrations as select 1 as x" });
    await setup.close();

    const context = createContext(parseEnv({ PGLITE_DIR: dir }));
    onTestFinished(() => context.close());
    for (let request = 0; request < 2; request++) {
      // drizzle's wrapper of the server's "column does not exist", not "in use by process".
      await expect(context.store()).rejects.toThrow(/^Failed query: select id, hash, created_at/);
    }
    expect(existsSync(`${dir}.lock`)).toBe(false);
  });
});
