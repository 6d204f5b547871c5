import { IN_PROCESS_VARIANTS } from "./cases/in-process.js";
import { summary } from "./load.js";
import type { BenchResults } from "./results.js";
import type { TargetCheck } from "./targets.js";

/**
 * The chart of a run, as a hand-written SVG: the measured ratio of every target against its target
 * line (green met, red missed), and the in-process throughput of every contender per concurrency.
 */

const WIDTH = 980;
const FONT = `font-family="system-ui, -apple-system, 'Segoe UI', sans-serif"`;
const COLORS: Record<string, string> = {
  lib: "#2563eb",
  raw: "#64748b",
  handlers: "#7c3aed",
  webFloor: "#a78bfa",
  connectPgSimple: "#ea580c",
  redis: "#dc2626",
};

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function text(x: number, y: number, content: string, attributes = ""): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${FONT} ${attributes}>${escapeXml(content)}</text>`;
}

function targetPanel(checks: TargetCheck[], top: number): { svg: string; height: number } {
  const rows = checks.filter((c) => c.case !== 5);
  const labelWidth = 360;
  const plotWidth = WIDTH - labelWidth - 90;
  const max = 2.5;
  const x = (value: number) => labelWidth + (Math.min(value, max) / max) * plotWidth;
  const rowHeight = 22;
  const parts: string[] = [
    text(
      20,
      top + 18,
      "Targets: measured ratio (bar) against the target (black tick)",
      'font-size="15" font-weight="600"',
    ),
    text(
      20,
      top + 36,
      "green: met, red: missed; cold start and p99 are lower-is-better, the rest higher-is-better",
      'font-size="11" fill="#475569"',
    ),
  ];
  const plotTop = top + 50;
  for (const tick of [0, 0.5, 1, 1.5, 2, 2.5]) {
    parts.push(
      `<line x1="${x(tick)}" y1="${plotTop}" x2="${x(tick)}" y2="${plotTop + rows.length * rowHeight}" stroke="#e2e8f0"/>`,
      text(
        x(tick),
        plotTop + rows.length * rowHeight + 14,
        `${tick}×`,
        'font-size="10" fill="#64748b" text-anchor="middle"',
      ),
    );
  }
  rows.forEach((row, i) => {
    const y = plotTop + i * rowHeight;
    const color = row.met ? "#16a34a" : "#dc2626";
    parts.push(
      text(
        labelWidth - 8,
        y + 15,
        `${row.case}. ${row.label}`,
        'font-size="11" text-anchor="end" fill="#0f172a"',
      ),
      `<rect x="${labelWidth}" y="${y + 4}" width="${(x(row.value) - labelWidth).toFixed(1)}" height="14" fill="${color}" opacity="0.85"/>`,
      `<line x1="${x(row.target)}" y1="${y + 1}" x2="${x(row.target)}" y2="${y + 21}" stroke="#0f172a" stroke-width="2"/>`,
      text(
        Math.max(x(row.value), x(row.target)) + 6,
        y + 15,
        `${row.value.toFixed(2)}×${row.value > max ? " →" : ""}`,
        'font-size="11" fill="#0f172a"',
      ),
    );
  });
  return { svg: parts.join("\n"), height: 50 + rows.length * rowHeight + 30 };
}

function throughputPanel(results: BenchResults, top: number): { svg: string; height: number } {
  const groups = results.inProcess ?? [];
  if (groups.length === 0) return { svg: "", height: 0 };
  const variants = IN_PROCESS_VARIANTS.filter((v) => groups.some((g) => g.runs[v]));
  const values = groups.map((g) =>
    Object.fromEntries(variants.map((v) => [v, g.runs[v] ? summary(g.runs[v]).opsPerSec : 0])),
  );
  const max = Math.max(...values.flatMap((v) => Object.values(v)));
  const step = 10 ** Math.floor(Math.log10(max));
  const axisMax = Math.ceil(max / step) * step;
  const plotLeft = 80;
  const plotTop = top + 60;
  const plotHeight = 220;
  const groupWidth = (WIDTH - plotLeft - 30) / groups.length;
  const barWidth = (groupWidth - 40) / variants.length;
  const y = (value: number) => plotTop + plotHeight - (value / axisMax) * plotHeight;
  const parts: string[] = [
    text(
      20,
      top + 18,
      "In-process throughput, 60/30/10 get/set/clear over 10,000 devices (median ops/s)",
      'font-size="15" font-weight="600"',
    ),
  ];
  variants.forEach((variant, i) => {
    const lx = 20 + i * 150;
    parts.push(
      `<rect x="${lx}" y="${top + 30}" width="12" height="12" fill="${COLORS[variant]}"/>`,
      text(lx + 18, top + 40, variant, 'font-size="11"'),
    );
  });
  for (let tick = 0; tick <= axisMax; tick += step) {
    parts.push(
      `<line x1="${plotLeft}" y1="${y(tick)}" x2="${WIDTH - 30}" y2="${y(tick)}" stroke="#e2e8f0"/>`,
      text(
        plotLeft - 6,
        y(tick) + 4,
        tick.toLocaleString("en"),
        'font-size="10" fill="#64748b" text-anchor="end"',
      ),
    );
  }
  groups.forEach((group, g) => {
    const gx = plotLeft + g * groupWidth + 20;
    variants.forEach((variant, i) => {
      const value = values[g]?.[variant] ?? 0;
      parts.push(
        `<rect x="${(gx + i * barWidth).toFixed(1)}" y="${y(value).toFixed(1)}" width="${(barWidth - 4).toFixed(1)}" height="${(plotTop + plotHeight - y(value)).toFixed(1)}" fill="${COLORS[variant]}"/>`,
        text(
          gx + i * barWidth + (barWidth - 4) / 2,
          y(value) - 4,
          Math.round(value).toLocaleString("en"),
          'font-size="9" text-anchor="middle" fill="#334155"',
        ),
      );
    });
    parts.push(
      text(
        gx + (variants.length * barWidth) / 2,
        plotTop + plotHeight + 16,
        `concurrency ${group.concurrency}`,
        'font-size="12" text-anchor="middle"',
      ),
    );
  });
  return { svg: parts.join("\n"), height: 60 + plotHeight + 40 };
}

/** The whole chart. */
export function renderChart(results: BenchResults, checks: TargetCheck[]): string {
  const title = `device-session-lock benchmarks (${results.mode} run, ${results.startedAt.slice(0, 10)})`;
  const targets = targetPanel(checks, 40);
  const throughput = throughputPanel(results, 40 + targets.height + 10);
  const height = 40 + targets.height + 10 + throughput.height + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    text(20, 26, title, 'font-size="17" font-weight="700"'),
    targets.svg,
    throughput.svg,
    "</svg>",
    "",
  ].join("\n");
}
