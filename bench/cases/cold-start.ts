import { execFile } from "node:child_process";
import { cp, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import type { BenchConfig } from "../config.js";
import { median, progress } from "../util.js";

/**
 * Case 7. Vercel compiles each `.ts` of a function on its own and leaves `node_modules` as they
 * are; the bench does the same with esbuild (one file in, one `.js` out, imports untouched) into
 * `bench/tmp/`, then imports each `api/` function in a fresh `node` process and times the import
 * (`performance.now()` around `await import()`, so the ~40 ms of Node's own start is left out).
 * "First request" goes on in the same process to answer one `GET` with the Neon driver configured
 * (it loads the driver and `ws` on first use, then finds no server on a closed local port and
 * answers 503 at once): the whole cold path up to the network.
 * The reference: `@neondatabase/serverless` and `ws` imported alone, the same way.
 * Sizes: each function bundled whole by esbuild (minified, every dependency in), raw and gzip, with
 * the packages that weigh most; the same bundles are timed too, as what bundling would gain.
 */

const exec = promisify(execFile);

const ROOT = new URL("../../", import.meta.url);
const OUT_DIR = new URL("bench/tmp/cold-start/", ROOT);

const PROBE = `
const [target, path] = [process.argv[1], process.argv[2]];
const t0 = performance.now();
const module = await import(target);
const t1 = performance.now();
let status = 0;
if (path) {
  const headers = {
    "X-Device-ID": "7d4f0c3e-1b2a-4c5d-8e9f-0a1b2c3d4e5f",
    Authorization: "Bearer " + process.env.CRON_SECRET,
  };
  const response = await module.GET(new Request("http://localhost" + path, { headers }));
  await response.text();
  status = response.status;
}
const t2 = performance.now();
process.stderr.write("PROBE " + JSON.stringify({ importMs: t1 - t0, firstRequestMs: t2 - t0, status }) + "\\n");
`;

/** The reference: Neon's driver and `ws`, nothing else. */
const REFERENCE = 'import "@neondatabase/serverless";\nimport "ws";\n';

/** A first request on the Neon driver that finds no server: a closed local port (discard, 9). */
const PROBE_ENV = {
  DATABASE_URL: "postgres://bench@127.0.0.1:9/bench",
  DATABASE_DRIVER: "neon",
  DATABASE_CONNECT_TIMEOUT_MS: "1000",
  HEALTH_TIMEOUT_MS: "1000",
  CRON_SECRET: "bench-cold-start-secret",
};

export type ColdStartResult = {
  samples: number;
  reference: { name: string; importMs: number };
  functions: {
    name: string;
    /** Transpiled file by file, node_modules external (as Vercel deploys it). */
    importMs: number;
    firstRequestMs: number;
    firstStatus: number;
    /** The esbuild bundle of the function (minified, dependencies in). */
    bundledImportMs: number;
    bundledFirstRequestMs: number;
    bundleBytes: number;
    bundleGzipBytes: number;
    heaviest: { name: string; bytes: number }[];
  }[];
};

async function sourceFiles(dir: string, extension = ".ts"): Promise<string[]> {
  const entries = await readdir(new URL(dir, ROOT), { recursive: true });
  return entries
    .filter((file) => file.endsWith(extension) && !file.endsWith(".d.ts"))
    .map((file) => join(dir, file));
}

type Probe = { importMs: number; firstRequestMs: number; status: number };

async function probe(cwd: string, target: string, path = ""): Promise<Probe> {
  const { stderr } = await exec(process.execPath, ["--input-type=module", "-e", PROBE, target, path], {
    cwd,
    env: { ...process.env, ...PROBE_ENV },
  });
  const line = stderr.split("\n").find((text) => text.startsWith("PROBE "));
  if (!line) throw new Error(`the cold-start probe of ${target} printed no result: ${stderr}`);
  return JSON.parse(line.slice(6)) as Probe;
}

function packageOf(path: string): string {
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  return match?.[1] ?? "(project code)";
}

export async function runColdStart(config: BenchConfig): Promise<ColdStartResult> {
  const root = new URL(".", ROOT).pathname;
  const outDir = OUT_DIR.pathname;
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  try {
    const apiFiles = (await sourceFiles("api")).filter(
      (file) => !file.split("/").some((part) => part.startsWith("_")),
    );
    // One file in, one file out, as Vercel's TypeScript step does; node_modules stay external.
    await build({
      entryPoints: [...apiFiles, ...(await sourceFiles("lib"))].map((file) => join(root, file)),
      outdir: join(outDir, "transpiled"),
      outbase: root,
      bundle: false,
      format: "esm",
      platform: "node",
      target: "node20",
      logLevel: "error",
    });
    // Plain JavaScript (the vendored zod) ships as it is.
    for (const file of await sourceFiles("lib", ".js")) {
      await cp(join(root, file), join(outDir, "transpiled", file));
    }
    const functions = apiFiles.map((file) => ({
      name: file.replace(/\.ts$/, ""),
      file,
      path: `/${file.replace(/\.ts$/, "")}`,
      transpiled: join(outDir, "transpiled", file.replace(/\.ts$/, ".js")),
      bundled: join(outDir, "bundled", file.replace(/\.ts$/, ".mjs")),
    }));
    const bundles = new Map<
      string,
      { bytes: number; gzipBytes: number; heaviest: { name: string; bytes: number }[] }
    >();
    for (const fn of functions) {
      const bundle = await build({
        entryPoints: [join(root, fn.file)],
        bundle: true,
        minify: true,
        format: "esm",
        platform: "node",
        target: "node20",
        outfile: fn.bundled,
        metafile: true,
        // CommonJS dependencies (pg, ws) call require() for Node's own modules.
        banner: {
          js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
        },
        // Optional native add-ons of pg and ws, absent here as on Vercel.
        external: ["pg-native", "bufferutil", "utf-8-validate"],
        logLevel: "error",
      });
      const byPackage = new Map<string, number>();
      let bytes = 0;
      for (const out of Object.values(bundle.metafile.outputs)) {
        bytes += out.bytes;
        for (const [input, { bytesInOutput }] of Object.entries(out.inputs)) {
          const name = packageOf(relative(root, input));
          byPackage.set(name, (byPackage.get(name) ?? 0) + bytesInOutput);
        }
      }
      bundles.set(fn.name, {
        bytes,
        gzipBytes: gzipSync(await readFile(fn.bundled)).byteLength,
        heaviest: [...byPackage]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 4)
          .map(([name, size]) => ({ name, bytes: size })),
      });
    }

    const reference = join(outDir, "reference.mjs");
    await writeFile(reference, REFERENCE);
    const samples = config.coldStart.samples;
    const times = new Map<string, Probe[]>();
    const record = (key: string, result: Probe) => times.set(key, [...(times.get(key) ?? []), result]);
    // Interleaved, so the machine's drift falls on all alike; the compiled files resolve
    // node_modules from the project root, as on Vercel.
    for (let i = 0; i < samples; i++) {
      record("reference", await probe(root, reference));
      for (const fn of functions) {
        record(`${fn.name} transpiled`, await probe(root, fn.transpiled, fn.path));
        record(`${fn.name} bundled`, await probe(root, fn.bundled, fn.path));
      }
    }
    progress(`cold start: ${samples} fresh processes per function and form`);
    const medianOf = (key: string, pick: (probe: Probe) => number) =>
      median((times.get(key) ?? []).map(pick));

    const results: ColdStartResult["functions"] = functions.map((fn) => {
      const bundle = bundles.get(fn.name);
      return {
        name: fn.name,
        importMs: medianOf(`${fn.name} transpiled`, (p) => p.importMs),
        firstRequestMs: medianOf(`${fn.name} transpiled`, (p) => p.firstRequestMs),
        firstStatus: times.get(`${fn.name} transpiled`)?.[0]?.status ?? 0,
        bundledImportMs: medianOf(`${fn.name} bundled`, (p) => p.importMs),
        bundledFirstRequestMs: medianOf(`${fn.name} bundled`, (p) => p.firstRequestMs),
        bundleBytes: bundle?.bytes ?? 0,
        bundleGzipBytes: bundle?.gzipBytes ?? 0,
        heaviest: bundle?.heaviest ?? [],
      };
    });
    return {
      samples,
      reference: {
        name: "@neondatabase/serverless + ws",
        importMs: medianOf("reference", (p) => p.importMs),
      },
      functions: results,
    };
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
}
