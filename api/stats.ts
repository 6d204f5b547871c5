import { defineRoute, json, requireCronSecret } from "../lib/http.js";

/** Counts and ages of the locks, for operators (same secret as the cron). */
export const route = defineRoute({
  name: "stats",

  async GET(request, context) {
    requireCronSecret(request, context.env);
    const store = await context.store();
    return json(await store.stats());
  },
});

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = route();
