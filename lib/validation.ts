import { ApiError } from "./errors.js";
import * as z from "./vendor/zod-mini.js";

/**
 * A device id: a UUID in canonical 8-4-4-4-12 hex form, any version, either case, but the nil
 * UUID. Written out without flags, so that the OpenAPI document carries the very same pattern.
 */
export const DEVICE_ID_PATTERN =
  /^(?!0{8}-0{4}-0{4}-0{4}-0{12}$)[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$/;

/** 1 to 50 characters of `A-Z a-z 0-9 _ . : -`, starting with a letter or digit. */
export const AGENT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,49}$/;

/** The request header that carries the device id. */
export const DEVICE_ID_HEADER = "X-Device-ID";

/**
 * Normalises a device id (lower-case) or throws `invalid_device_id`.
 * The nil UUID, braces, `urn:uuid:`, missing hyphens and lists are all rejected.
 */
export function parseDeviceId(raw: string | null | undefined): string {
  if (raw === null || raw === undefined || raw === "") {
    throw new ApiError("invalid_device_id", `The ${DEVICE_ID_HEADER} header is required.`);
  }
  if (!DEVICE_ID_PATTERN.test(raw)) {
    throw new ApiError(
      "invalid_device_id",
      `${DEVICE_ID_HEADER} must be one UUID in canonical 8-4-4-4-12 hex form, not the nil UUID.`,
    );
  }
  return raw.toLowerCase();
}

const AGENT_NAME_RULE = "must be 1 to 50 characters of A-Z a-z 0-9 _ . : -, starting with a letter or digit";

/** An agent name as the contract allows it. */
export const agentNameSchema = z
  .string({ error: (issue) => (issue.input === undefined ? "is required" : "must be a string") })
  .check(z.regex(AGENT_NAME_PATTERN, AGENT_NAME_RULE));

/** A lock duration: a whole number of seconds from 1 to `maxTtlSeconds`. */
export function ttlSecondsSchema(maxTtlSeconds: number) {
  return z
    .number("must be a number of seconds")
    .check(
      z.int(`must be a whole number of seconds`),
      z.gte(1, `must be at least 1`),
      z.lte(maxTtlSeconds, `must be at most ${maxTtlSeconds} (MAX_SESSION_TTL)`),
    );
}

function buildLockRequestSchema(maxTtlSeconds: number) {
  return z.strictObject(
    {
      agent: agentNameSchema,
      ttlSeconds: z.optional(ttlSecondsSchema(maxTtlSeconds)),
    },
    {
      error: (issue) =>
        issue.code === "unrecognized_keys"
          ? "unknown key: the body takes only agent and ttlSeconds"
          : 'must be a JSON object such as {"agent": "scheduling", "ttlSeconds": 3600}',
    },
  );
}

export type LockRequestSchema = ReturnType<typeof buildLockRequestSchema>;
export type LockRequest = z.infer<LockRequestSchema>;

const lockRequestSchemas = new Map<number, LockRequestSchema>();

/** The body of `PUT /api/session-lock`: exactly `agent` and an optional `ttlSeconds` (built once per limit). */
export function lockRequestSchema(maxTtlSeconds: number): LockRequestSchema {
  let schema = lockRequestSchemas.get(maxTtlSeconds);
  if (!schema) {
    schema = buildLockRequestSchema(maxTtlSeconds);
    lockRequestSchemas.set(maxTtlSeconds, schema);
  }
  return schema;
}

/** Turns zod issues into `invalid_body` naming every failing field. */
export function invalidBody(error: z.core.$ZodError): ApiError {
  const fields = error.issues.flatMap((issue) =>
    // Unknown keys are reported on the object itself: name each of them instead.
    issue.code === "unrecognized_keys"
      ? issue.keys.map((key) => ({ field: key, message: issue.message }))
      : [{ field: issue.path.length > 0 ? issue.path.join(".") : "(body)", message: issue.message }],
  );
  const detail = fields.map((f) => `${f.field}: ${f.message}`).join("; ");
  return new ApiError("invalid_body", detail, { fields });
}

/** Throws unless `agent` is a valid name and, when an allow-list is given, on it. */
export function assertAgentAllowed(agent: string, allowedAgents: readonly string[] | undefined): void {
  if (!AGENT_NAME_PATTERN.test(agent)) {
    throw new ApiError("invalid_body", `agent: ${AGENT_NAME_RULE}`, {
      fields: [{ field: "agent", message: AGENT_NAME_RULE }],
    });
  }
  if (allowedAgents && !allowedAgents.includes(agent)) {
    throw new ApiError("agent_not_allowed", `Agent "${agent}" is not in ALLOWED_AGENTS.`);
  }
}
