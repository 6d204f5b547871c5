/**
 * The one error vocabulary: every failure a route can answer with, its status, and its
 * `application/problem+json` rendering (RFC 9457).
 */

const statusByCode = {
  invalid_device_id: 400,
  invalid_body: 400,
  invalid_precondition: 400,
  agent_not_allowed: 400,
  unauthorized: 401,
  not_found: 404,
  method_not_allowed: 405,
  precondition_failed: 412,
  payload_too_large: 413,
  unsupported_media_type: 415,
  misconfigured: 500,
  internal_error: 500,
  database_unavailable: 503,
} as const satisfies Record<string, number>;

/** A machine-readable error code, as found in the `code` member of a problem. */
export type ErrorCode = keyof typeof statusByCode;

const titleByCode: Record<ErrorCode, string> = {
  invalid_device_id: "Invalid device id",
  invalid_body: "Invalid request body",
  invalid_precondition: "Unsupported precondition header",
  agent_not_allowed: "Agent not allowed",
  unauthorized: "Unauthorized",
  not_found: "Not found",
  method_not_allowed: "Method not allowed",
  precondition_failed: "Precondition failed",
  payload_too_large: "Request body too large",
  unsupported_media_type: "Unsupported media type",
  misconfigured: "Service misconfigured",
  internal_error: "Internal error",
  database_unavailable: "Database unavailable",
};

/** The HTTP status for an error code. */
export function statusOf(code: ErrorCode): number {
  return statusByCode[code];
}

/** Extra members of a problem body and headers of its response. */
export type ProblemExtras = {
  /** Added to the body, e.g. `fields` for `invalid_body` or `current` for `precondition_failed`. */
  members?: Record<string, unknown>;
  /** Added to the response, e.g. `Allow`, `Retry-After`, `WWW-Authenticate`. */
  headers?: Record<string, string>;
};

/** The one error class: a code from the vocabulary and a sentence for the caller. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly code: ErrorCode;
  readonly extras: ProblemExtras;

  constructor(
    code: ErrorCode,
    detail: string,
    members?: Record<string, unknown>,
    headers?: Record<string, string>,
  ) {
    super(detail);
    this.code = code;
    this.extras = { members, headers };
  }

  get status(): number {
    return statusOf(this.code);
  }
}

/** The JSON body of a problem response. */
export type Problem = {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  [member: string]: unknown;
};

/** Renders an `ApiError` as an RFC 9457 problem body. */
export function toProblem(error: ApiError): Problem {
  return {
    type: `urn:device-session-lock:problem:${error.code}`,
    title: titleByCode[error.code],
    status: error.status,
    detail: error.message,
    code: error.code,
    ...error.extras.members,
  };
}

/**
 * An error and the errors behind it: its `cause` chain, and the `error` that a non-Error
 * rejection carries (the Neon driver rejects with the WebSocket's `ErrorEvent`).
 */
export function* errorChain(error: unknown, maxDepth = 6): Generator<Error> {
  let current: unknown = error;
  for (let depth = 0; current && depth < maxDepth; depth++) {
    if (current instanceof Error) {
      yield current;
      current = current.cause;
    } else {
      current = (current as { error?: unknown }).error;
    }
  }
}

/**
 * Drizzle's query error (migrations run through drizzle), known by its shape so that a request
 * need not load drizzle to recognise it: it carries the query and its parameters, and its
 * message repeats both (PGlite's own errors carry both too, but say what went wrong).
 */
export function isWrappedQueryError(error: Error): error is Error & { query: string } {
  return (
    typeof (error as { query?: unknown }).query === "string" &&
    "params" in error &&
    error.message.startsWith("Failed query: ")
  );
}
