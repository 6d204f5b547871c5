import * as fc from "fast-check";
import { expect } from "vitest";
import { statusOf } from "../../lib/errors.js";
import { clearedSchema, lockSchema, problemSchema } from "../../lib/openapi.js";
import { CRON_SECRET } from "./routes.js";

/**
 * Arbitraries for hostile HTTP requests, and the invariants every answer must keep whatever was
 * sent. Requests are plain data (`RequestSpec`) so that fast-check prints and shrinks them.
 */

/** The methods an `api/` function exports (the platform answers the others itself). */
export const ROUTE_METHODS = ["GET", "HEAD", "PUT", "DELETE", "POST", "PATCH", "OPTIONS"] as const;
export type RouteMethod = (typeof ROUTE_METHODS)[number];

export type BodySpec =
  | { kind: "none" }
  | { kind: "text"; text: string }
  | { kind: "bytes"; hex: string }
  | { kind: "repeat"; prefix: string; unit: string; times: number; suffix: string };

/** One request, as data. `null` headers are not sent. */
export type RequestSpec = {
  method: RouteMethod;
  deviceId: string | null;
  contentType: string | null;
  contentLength: string | null;
  ifMatch: string | null;
  ifNoneMatch: string | null;
  authorization: string | null;
  origin: string | null;
  body: BodySpec;
};

/** A header value as it can arrive over HTTP: Latin-1 without NUL, CR or LF. */
export const headerValue = (maxLength = 64): fc.Arbitrary<string> =>
  fc.string({
    unit: fc
      .integer({ min: 1, max: 255 })
      .filter((code) => code !== 10 && code !== 13)
      .map((code) => String.fromCharCode(code)),
    maxLength,
  });

const SQL_INJECTIONS = [
  "'; drop table conversation_states; --",
  "' or '1'='1",
  "1; select pg_sleep(10)",
  "$1",
  "\\x00",
  "%00",
  "../../etc/passwd",
  "<script>alert(1)</script>",
  ["$", "{jndi:ldap://x}"].join(""),
];

/** A canonical UUID of any version (the contract accepts every version, and the nil UUID is refused). */
const anyVersionUuid = fc
  .tuple(
    fc.stringMatching(/^[0-9a-f]{8}$/),
    fc.stringMatching(/^[0-9a-f]{4}$/),
    fc.stringMatching(/^[0-9a-f]{4}$/),
    fc.stringMatching(/^[0-9a-f]{4}$/),
    fc.stringMatching(/^[0-9a-f]{12}$/),
  )
  .map((parts) => parts.join("-"));

/** Device ids: valid, known (already holding a lock), near misses, hostile, huge, or none. */
export function deviceIdArb(knownDevices: readonly string[]): fc.Arbitrary<string | null> {
  const uuid = fc.oneof(fc.uuid(), anyVersionUuid);
  const known =
    knownDevices.length > 0 ? [{ weight: 3, arbitrary: fc.mixedCase(fc.constantFrom(...knownDevices)) }] : [];
  return fc.oneof(
    { weight: 5, arbitrary: fc.mixedCase(uuid) },
    ...known,
    { weight: 1, arbitrary: fc.constant(null) },
    {
      weight: 3,
      arbitrary: fc.oneof(
        fc.constantFrom("", " ", "00000000-0000-0000-0000-000000000000", ...SQL_INJECTIONS),
        uuid.map((id) => `{${id}}`),
        uuid.map((id) => `urn:uuid:${id}`),
        uuid.map((id) => id.replaceAll("-", "")),
        fc.tuple(uuid, uuid).map(([a, b]) => `${a}, ${b}`),
        fc.tuple(uuid, uuid).map(([a, b]) => `${a}${b}`),
        uuid.map((id) => `${id}\t`),
        uuid.map((id) => `\u00a0${id}`),
        uuid.map((id) => id.slice(0, -1)),
        uuid.map((id) => `${id}0`),
        uuid.map((id) => id.replace(/-/g, "_")),
        // One character replaced by any Latin-1 character: most of these are near misses.
        fc
          .tuple(
            uuid,
            fc.nat(35),
            headerValue(1).filter((c) => c.length === 1),
          )
          .map(([id, at, c]) => `${id.slice(0, at)}${c}${id.slice(at + 1)}`),
      ),
    },
    { weight: 1, arbitrary: headerValue(80) },
    { weight: 1, arbitrary: fc.integer({ min: 37, max: 20_000 }).map((n) => "a".repeat(n)) },
  );
}

/** Agent names: valid, allowed or not, invalid in every way, or not strings at all. */
const agentArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom("scheduling", "billing", "a", "x.y:z_0-9", `a${"b".repeat(49)}`) },
  { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,49}$/) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "",
      "-x",
      "_x",
      ".x",
      "a b",
      "a".repeat(51),
      "schédule",
      "scheduling\u0000",
      " scheduling",
      "scheduling\n",
      "SCHEDULING",
      ...SQL_INJECTIONS,
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 60 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);

const ttlArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 7200 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(0, -1, 1.5, 3601, 604_801, 1e308, -0, 2 ** 53, 2 ** 31, "60", null, true),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);

/** A lock body, near-valid: the right keys most of the time, hostile values and extra keys often. */
const lockBodyArb: fc.Arbitrary<string> = fc
  .record(
    {
      agent: agentArb,
      ttlSeconds: ttlArb,
      extra: fc.dictionary(
        fc.oneof(fc.constantFrom("__proto__", "constructor", "prototype", "owner", "version"), fc.string()),
        fc.jsonValue({ maxDepth: 2 }),
        { maxKeys: 2 },
      ),
    },
    { requiredKeys: [] },
  )
  .map(({ agent, ttlSeconds, extra }) => {
    const members = Object.entries(extra ?? {}).map(
      ([key, value]) => `${JSON.stringify(key)}:${JSON.stringify(value)}`,
    );
    if (agent !== undefined) members.push(`"agent":${JSON.stringify(agent)}`);
    if (ttlSeconds !== undefined) members.push(`"ttlSeconds":${JSON.stringify(ttlSeconds)}`);
    return `{${members.join(",")}}`;
  });

const hexOf = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

/** Bodies: none, near-valid lock bodies, random JSON or text, huge, non-UTF-8, deeply nested. */
export const bodyArb: fc.Arbitrary<BodySpec> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ kind: "none" as const }) },
  {
    weight: 5,
    arbitrary: fc
      .record(
        // Valid names, half of them outside an ALLOWED_AGENTS of scheduling and billing.
        {
          agent: fc.constantFrom("scheduling", "billing", "marketing", "a"),
          ttlSeconds: fc.integer({ min: 1, max: 3600 }),
        },
        { requiredKeys: ["agent"] },
      )
      .map((body) => ({ kind: "text" as const, text: JSON.stringify(body) })),
  },
  { weight: 4, arbitrary: lockBodyArb.map((text) => ({ kind: "text" as const, text })) },
  {
    weight: 2,
    arbitrary: fc
      .oneof(
        fc.jsonValue().map((value) => JSON.stringify(value) ?? "null"),
        fc.string({ unit: "binary", maxLength: 200 }),
        fc.constantFrom(
          "",
          "null",
          "[]",
          "{}",
          '\ufeff{"agent":"scheduling"}',
          '{"agent":"scheduling"}garbage',
          '{"agent":"scheduling","agent":"billing"}',
          '{"agent":"scheduling","__proto__":{"admin":true}}',
          '{"agent":"scheduling","ttlSeconds":1e400}',
          '{"agent":"\\ud800"}',
        ),
      )
      .map((text) => ({ kind: "text" as const, text })),
  },
  {
    weight: 1,
    // Not UTF-8: a lone continuation byte, an overlong encoding, a truncated sequence, 0xFF.
    arbitrary: fc
      .tuple(
        fc.uint8Array({ maxLength: 40 }),
        fc.constantFrom([0x80], [0xc0, 0xaf], [0xe2, 0x82], [0xff], [0xed, 0xa0, 0x80]),
      )
      .map(([random, invalid]) => ({
        kind: "bytes" as const,
        hex: `${hexOf(new TextEncoder().encode('{"agent":"'))}${hexOf(Uint8Array.from(invalid))}${hexOf(random)}${hexOf(new TextEncoder().encode('"}'))}`,
      })),
  },
  {
    weight: 1,
    // Huge: a valid lock body padded past (or just under) the 4 KiB limit.
    arbitrary: fc.integer({ min: 4000, max: 200_000 }).map((times) => ({
      kind: "repeat" as const,
      prefix: '{"agent":"scheduling","padding":"',
      unit: "x",
      times,
      suffix: '"}',
    })),
  },
  {
    weight: 1,
    // Deeply nested, within and beyond the limit.
    arbitrary: fc
      .tuple(fc.integer({ min: 1, max: 100_000 }), fc.constantFrom(["[", "]"], ['{"agent":', "}"]))
      .map(([depth, [open, close]]) => ({
        kind: "repeat" as const,
        prefix: "",
        unit: open,
        times: depth,
        suffix: close.repeat(depth),
      })),
  },
);

const contentTypeArb = fc.oneof(
  { weight: 8, arbitrary: fc.constant("application/json") },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "application/json; charset=utf-8",
      "APPLICATION/JSON",
      "application/json;charset=latin1",
      "application/json, text/plain",
      "application/json-patch+json",
      "application/problem+json",
      "application/jsonx",
      "text/json",
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=xyz",
      "",
      " ",
    ),
  },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: headerValue(40) },
);

const conditionalArb = fc.oneof(
  { weight: 2, arbitrary: fc.constant("*") },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 40 }).map((n) => `"${n}"`) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'W/"1"',
      "1",
      '"1", "2"',
      '"-1"',
      '"1e3"',
      '"0"',
      '"999999999999999999"',
      '"99999999999999999999"',
      '""',
      '"*"',
      "W/*",
      "* ,*",
    ),
  },
  { weight: 1, arbitrary: headerValue(30) },
);

const authorizationArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.constant(`Bearer ${CRON_SECRET}`) },
  {
    weight: 2,
    arbitrary: fc.constantFrom("Bearer ", "Bearer", "Basic dXNlcjpwYXNz", `bearer ${CRON_SECRET}`),
  },
  { weight: 1, arbitrary: headerValue(60) },
);

const originArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.constantFrom("https://chat.example.com", "https://evil.example.com", "null") },
  { weight: 1, arbitrary: headerValue(40) },
);

const contentLengthArb = fc.oneof(
  { weight: 10, arbitrary: fc.constant(null) },
  {
    weight: 1,
    arbitrary: fc.constantFrom("0", "-1", "abc", "4096", "4097", "1e3", "99999999999999999999", " 12"),
  },
);

/** A hostile request to the session-lock route. */
export function requestArb(knownDevices: readonly string[]): fc.Arbitrary<RequestSpec> {
  return fc
    .record({
      method: fc.oneof(
        { weight: 5, arbitrary: fc.constant("PUT" as const) },
        { weight: 1, arbitrary: fc.constant("DELETE" as const) },
        { weight: 4, arbitrary: fc.constantFrom(...ROUTE_METHODS) },
      ),
      deviceId: deviceIdArb(knownDevices),
      contentType: contentTypeArb,
      contentLength: contentLengthArb,
      conditions: fc.oneof(
        { weight: 8, arbitrary: fc.constant({ ifMatch: null, ifNoneMatch: null }) },
        { weight: 3, arbitrary: conditionalArb.map((ifMatch) => ({ ifMatch, ifNoneMatch: null })) },
        { weight: 3, arbitrary: conditionalArb.map((ifNoneMatch) => ({ ifMatch: null, ifNoneMatch })) },
        { weight: 1, arbitrary: fc.record({ ifMatch: conditionalArb, ifNoneMatch: conditionalArb }) },
      ),
      authorization: authorizationArb,
      origin: originArb,
      body: bodyArb,
    })
    .map(({ conditions, ...rest }) => ({ ...rest, ...conditions }));
}

/** The bytes of a body spec. */
export function bodyBytes(body: BodySpec): Uint8Array<ArrayBuffer> | null {
  switch (body.kind) {
    case "none":
      return null;
    case "text":
      return new TextEncoder().encode(body.text) as Uint8Array<ArrayBuffer>;
    case "bytes":
      return Uint8Array.from(Buffer.from(body.hex, "hex"));
    case "repeat":
      return new TextEncoder().encode(
        `${body.prefix}${body.unit.repeat(body.times)}${body.suffix}`,
      ) as Uint8Array<ArrayBuffer>;
  }
}

/** The `Request` a spec describes, to `url`. GET and HEAD carry no body (fetch forbids one). */
export function toRequest(spec: RequestSpec, url = "http://localhost/api/session-lock"): Request {
  const headers = new Headers();
  const set = (name: string, value: string | null) => {
    if (value !== null) headers.set(name, value);
  };
  set("X-Device-ID", spec.deviceId);
  set("Content-Type", spec.contentType);
  set("Content-Length", spec.contentLength);
  set("If-Match", spec.ifMatch);
  set("If-None-Match", spec.ifNoneMatch);
  set("Authorization", spec.authorization);
  set("Origin", spec.origin);
  const bytes = spec.method === "GET" || spec.method === "HEAD" ? null : bodyBytes(spec.body);
  return new Request(url, { method: spec.method, headers, body: bytes });
}

/**
 * Texts that only the server could have put in a response: a stack frame, SQL, the table, driver
 * and ORM wording. A marker the request itself contained (a key echoed in `fields`) does not count.
 */
const LEAK_MARKERS: (string | RegExp)[] = [
  /\n\s+at /,
  /at [\w.<>]+ \(/,
  "node_modules",
  "file://",
  "Failed query",
  "DrizzleQueryError",
  "conversation_states",
  "params:",
  "SQLSTATE",
  "syntax error",
  "duplicate key",
  "violates",
  'relation "',
  "insert into",
  "delete from",
  "select ",
  "ECONNREFUSED",
  "/work/",
];

/** Fails when `text` contains a leak marker that `requestText` does not. */
export function expectNoLeak(text: string, requestText = ""): void {
  for (const marker of LEAK_MARKERS) {
    const inResponse = typeof marker === "string" ? text.includes(marker) : marker.test(text);
    const inRequest = typeof marker === "string" ? requestText.includes(marker) : marker.test(requestText);
    if (inResponse && !inRequest) expect.fail(`The response leaks ${String(marker)}: ${text.slice(0, 500)}`);
  }
}

/**
 * Checks what every answer must be, whatever the request: no 5xx (the database works here), the
 * contract's headers, errors as `problem+json` with its keys and a status that matches the code,
 * success bodies in the contract's shapes, and nothing leaked.
 * @returns the status and the parsed body (`null` without one)
 */
export async function expectWellFormed(
  response: Response,
  options: { requestText: string; kind: "session-lock" | "other"; method: string },
): Promise<{ status: number; body: unknown }> {
  const { status } = response;
  expect(status, "never a 5xx while the database works").toBeLessThan(500);
  expect(status).toBeGreaterThanOrEqual(200);
  expect(response.headers.get("Cache-Control")).toBe("no-store");
  expect(response.headers.get("X-Request-Id")).toBeTruthy();
  const text = await response.text();
  expectNoLeak(text, options.requestText);
  if (status === 204) {
    expect(options.method).toBe("OPTIONS");
    expect(text).toBe("");
    return { status, body: null };
  }
  if (status >= 400) {
    expect(response.headers.get("Content-Type")).toBe("application/problem+json");
    const body: unknown = JSON.parse(text);
    expect(Object.keys(body as object)).toEqual(
      expect.arrayContaining(["type", "title", "status", "detail", "code"]),
    );
    const problem = problemSchema.parse(body);
    expect(problem.status).toBe(status);
    expect(statusOf(problem.code)).toBe(status);
    expect(problem.type).toBe(`urn:device-session-lock:problem:${problem.code}`);
    if (status === 405) expect(response.headers.get("Allow")).toMatch(/OPTIONS/);
    return { status, body };
  }
  expect(response.headers.get("Content-Type")).toBe("application/json");
  const body: unknown = JSON.parse(text);
  if (options.kind === "session-lock") {
    if (options.method === "DELETE") clearedSchema.parse(body);
    else {
      const lock = lockSchema.parse(body);
      const etag = response.headers.get("ETag");
      expect(etag).toBe(lock.version === null ? null : `"${lock.version}"`);
    }
  }
  return { status, body };
}

/** A readable, bounded text of a spec, for leak checks and failure messages. */
export function describeSpec(spec: RequestSpec): string {
  const bytes = bodyBytes(spec.body);
  return JSON.stringify({
    ...spec,
    body: bytes ? Buffer.from(bytes.subarray(0, 4096)).toString("latin1") : null,
  });
}
