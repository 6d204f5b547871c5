import { defineRoute, json } from "../lib/http.js";
import { openApiDocument } from "../lib/openapi.js";

/** The OpenAPI 3.1 document, built from the same zod schemas the routes parse with. */
export const route = defineRoute({
  name: "openapi",
  async GET(_request, context) {
    return json(openApiDocument(context.env));
  },
});

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = route();
