import { defineRoute, json, requireCronSecret } from "../../lib/http.js";

/** Vercel's cron calls this to delete expired locks in short batches within a time budget. */
export const route = defineRoute({
  name: "cron/purge-expired",
  // Vercel's cron calls GET; a HEAD must not purge.
  getChangesState: true,

  async GET(request, context) {
    requireCronSecret(request, context.env);
    const store = await context.store();
    const result = await store.purgeExpired({
      batchSize: context.env.PURGE_BATCH_SIZE,
      timeBudgetMs: context.env.PURGE_TIME_BUDGET_MS,
    });
    context.log({ level: "info", msg: "purge", ...result });
    return json(result);
  },
});

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = route();
