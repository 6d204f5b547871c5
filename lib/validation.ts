import * as z from "zod/mini";
import { ApiError } from "./errors.js";

/** A UUID in canonical 8-4-4-4-12 hex form, any version, either case. */
const DEVICE_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NIL_UUID = "00000000-0000-0000-0000-000000000000";

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
  if (!DEVICE_ID_PATTERN.test(raw) || raw === NIL_UUID) {
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
  .string("must be a string")
  .check(z.regex(AGENT_NAME_PATTERN, AGENT_NAME_RULE));

/** A lock duration: a whole number of seconds from 1 to `maxTtlSeconds`. */
export function ttlSecondsSchema(maxTtlSeconds: number) {
  return z
    .number("must be a number")
    .check(
      z.int(`must be a whole number of seconds`),
      z.gte(1, `must be at least 1`),
      z.lte(maxTtlSeconds, `must be at most ${maxTtlSeconds} (MAX_SESSION_TTL)`),
    );
}

/** The body of `PUT /api/session-lock`: exactly `agent` and an optional `ttlSeconds`. */
export function lockRequestSchema(maxTtlSeconds: number) {
  return z.strictObject({
    agent: agentNameSchema,
    ttlSeconds: z.optional(ttlSecondsSchema(maxTtlSeconds)),
  });
}

export type LockRequest = z.infer<ReturnType<typeof lockRequestSchema>>;

/** Turns zod issues into `invalid_body` naming every failing field. */
export function invalidBody(error: z.core.$ZodError): ApiError {
  const fields = error.issues.map((issue) => ({
    field: issue.path.length > 0 ? issue.path.join(".") : issueKeys(issue),
    message: issue.message,
  }));
  const detail = fields.map((f) => `${f.field}: ${f.message}`).join("; ");
  return new ApiError("invalid_body", detail, { fields });
}

function issueKeys(issue: z.core.$ZodIssue): string {
  // Unknown keys are reported on the object itself; name them instead of "(root)".
  return issue.code === "unrecognized_keys" ? issue.keys.join(", ") : "(body)";
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
