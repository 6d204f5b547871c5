import type { TestProject } from "vitest/node";
import { openDatabase } from "../lib/db.js";
import { migrate } from "../lib/migrate.js";
import { createPgliteTemplates } from "./helpers/pglite.js";
import {
  adminQuery,
  databaseUrl,
  dropDatabase,
  quoteIdentifier,
  type TestServer,
  uniqueDatabaseName,
} from "./helpers/server.js";

/**
 * Once per run: saves a blank and a migrated PGlite data directory that every PGlite starts from. With
 * `TEST_DATABASE_URL`, also creates and migrates a template database on that server, from which
 * each test file copies its own fresh database. The teardown removes all of it.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const pgliteTemplate = await createPgliteTemplates();
  project.provide("pgliteTemplate", pgliteTemplate.migrated);
  project.provide("pgliteBlank", pgliteTemplate.blank);
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) {
    project.provide("testServer", null);
    return () => pgliteTemplate.remove();
  }
  const server = await createServerTemplate(adminUrl).catch(async (error: unknown) => {
    await pgliteTemplate.remove();
    throw error;
  });
  project.provide("testServer", server);

  return async () => {
    await pgliteTemplate.remove();
    const [result] = await adminQuery(
      adminUrl,
      `select datname from pg_database where starts_with(datname, '${server.prefix}_')`,
    );
    for (const { datname } of result?.rows ?? []) await dropDatabase(adminUrl, datname);
  };
}

async function createServerTemplate(adminUrl: string): Promise<TestServer> {
  const prefix = uniqueDatabaseName("dsl_test");
  const template = `${prefix}_template`;
  await adminQuery(adminUrl, `create database ${quoteIdentifier(template)}`);
  const handle = await openDatabase({ url: databaseUrl(adminUrl, template), driver: "pg", poolMax: 1 });
  try {
    await migrate(handle);
  } catch (error) {
    await handle.close();
    await dropDatabase(adminUrl, template);
    throw error;
  }
  await handle.close();
  return { adminUrl, template, prefix };
}
