import { Validator } from "@seriousme/openapi-schema-validator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engines, type TestDatabase } from "./helpers/engines.js";
import { authorizedGet, bindRoutes } from "./helpers/routes.js";

describe.each(engines.slice(0, 1))("the OpenAPI document on $name", (engine) => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await engine.open();
  });
  afterAll(() => database.close());

  it("is a valid OpenAPI 3.1 document", async () => {
    const response = await bindRoutes(database).openapi.GET(authorizedGet("/api/openapi.json"));
    expect(response.status).toBe(200);
    const document = await response.json();
    const result = await new Validator().validate(document);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(document.openapi).toBe("3.1.0");
  });

  it("describes the request body from the same schema the route parses with, limits included", async () => {
    const response = await bindRoutes(database, {
      MAX_SESSION_TTL: "900",
      DEFAULT_SESSION_TTL: "60",
    }).openapi.GET(authorizedGet("/api/openapi.json"));
    const { LockRequest } = (await response.json()).components.schemas;
    expect(LockRequest.required).toEqual(["agent"]);
    expect(LockRequest.additionalProperties).toBe(false);
    expect(LockRequest.properties.ttlSeconds).toMatchObject({ type: "integer", minimum: 1, maximum: 900 });
    expect(LockRequest.properties.agent.pattern).toBe("^[A-Za-z0-9][A-Za-z0-9_.:-]{0,49}$");
  });
});
