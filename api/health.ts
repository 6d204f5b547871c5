import { checkDatabase } from "../lib/db.js";
import { defineRoute, json } from "../lib/http.js";

/** One round trip to the database, bounded by `HEALTH_TIMEOUT_MS`. */
export const route = defineRoute({
  name: "health",

  async GET(_request, context) {
    const result = await checkDatabase(context, context.env.HEALTH_TIMEOUT_MS);
    if (!result.ok) {
      context.log({ level: "warn", msg: "health check failed", error: result.error });
      return json({ status: "unavailable" }, { status: 503, headers: { "Retry-After": "5" } });
    }
    return json({ status: "ok", database: { latencyMs: result.latencyMs } });
  },
});

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = route();
