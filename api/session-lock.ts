import { defineRoute, json, lockResponse, preconditionFailed, readCondition, readJson } from "../lib/http.js";
import { DEVICE_ID_HEADER, lockRequestSchema, parseDeviceId } from "../lib/validation.js";

/** `GET` reads, `PUT` sets and `DELETE` clears the lock of the device in `X-Device-ID`. */
export const route = defineRoute({
  name: "session-lock",

  async GET(request, context) {
    const deviceId = parseDeviceId(request.headers.get(DEVICE_ID_HEADER));
    const store = await context.store();
    return lockResponse(deviceId, await store.get(deviceId));
  },

  async PUT(request, context) {
    const deviceId = parseDeviceId(request.headers.get(DEVICE_ID_HEADER));
    const condition = readCondition(request, "set");
    const body = await readJson(request, lockRequestSchema(context.env.MAX_SESSION_TTL));
    const store = await context.store();
    const result = await store.set(deviceId, { ...body, condition });
    if (!result.ok) return preconditionFailed(deviceId, result.current, result.reason);
    return lockResponse(deviceId, result.lock);
  },

  async DELETE(request, context) {
    const deviceId = parseDeviceId(request.headers.get(DEVICE_ID_HEADER));
    const condition = readCondition(request, "clear");
    const store = await context.store();
    const result = await store.clear(deviceId, condition);
    if (!result.ok) return preconditionFailed(deviceId, result.current, result.reason);
    return json({ deviceId, cleared: result.cleared });
  },
});

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = route();
