import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { VENDOR_DTS, VENDOR_JS, vendoredZod } from "../scripts/vendor-zod.js";

const ROOT = new URL("../", import.meta.url);

async function sources(dir: string): Promise<string[]> {
  const files = await readdir(new URL(dir, ROOT), { recursive: true });
  return files.filter((file) => /\.ts$/.test(file) && !file.endsWith(".d.ts")).map((file) => join(dir, file));
}

describe("the vendored zod/mini", () => {
  it("is what npm run vendor:zod writes from the installed zod (run it after upgrading zod)", async () => {
    const expected = await vendoredZod();
    expect(await readFile(new URL(VENDOR_JS, ROOT), "utf8")).toBe(expected.js);
    expect(await readFile(new URL(VENDOR_DTS, ROOT), "utf8")).toBe(expected.dts);
  });

  it("is the only way api/ and lib/ reach zod, so no function loads zod's 105 modules", async () => {
    const direct: string[] = [];
    for (const file of [...(await sources("api")), ...(await sources("lib"))]) {
      const text = await readFile(new URL(file, ROOT), "utf8");
      if (/(?:from|import)\s*\(?\s*["']zod(?:\/[^"']*)?["']/.test(text)) direct.push(file);
    }
    expect(direct).toEqual([]);
  });

  it("holds no locale, and validates with the project's own messages", async () => {
    const z = await import("../lib/vendor/zod-mini.js");
    expect(Object.keys(z)).not.toContain("locales");
    const js = await readFile(new URL(VENDOR_JS, ROOT), "utf8");
    expect(js).not.toMatch(/\/locales\//);
    const schema = z.string().check(z.regex(/^a+$/, "must be a's"));
    expect(schema.safeParse("aaa")).toEqual({ success: true, data: "aaa" });
    const failed = schema.safeParse("b");
    expect(failed.success).toBe(false);
    expect(failed.error?.issues.map((issue) => issue.message)).toEqual(["must be a's"]);
  });
});
