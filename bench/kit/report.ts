/**
 * The bench's one report writer: how a figure is printed, a verdict judged
 * and shown, a markdown table drawn, a phase described (the Phase shape every
 * file in bench/phases/ exports), and the results written: for each phase
 * <phase>.json and <phase>.md, and for a whole run latest.json, summary.md
 * (one table of every verdict, then each phase's section) and the chart.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const NA = 'n/a';

/** A number with `digits` decimals and thousands separators; n/a when missing. */
export function num(n: number | null | undefined, digits = 1): string {
  return n === null || n === undefined || !Number.isFinite(n) ? NA : n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** a / b as "1.23×"; n/a when either is missing. */
export function times(a: number | null | undefined, b: number | null | undefined, digits = 2): string {
  return a === null || a === undefined || b === null || b === undefined || b <= 0 ? NA : `${num(a / b, digits)}×`;
}

export function mib(bytes: number | null | undefined): number | null {
  return bytes === null || bytes === undefined ? null : bytes / 2 ** 20;
}

export interface Verdict {
  readonly name: string;
  readonly result: string;
  readonly target: string;
  /** null: could not be judged (a figure is missing), or a figure reported with no target (`reported`). */
  readonly pass: boolean | null;
  readonly reported?: boolean;
}

export function judge(value: number | null | undefined, ok: (v: number) => boolean): boolean | null {
  return value === null || value === undefined || !Number.isFinite(value) ? null : ok(value);
}

export function verdictCell(v: Pick<Verdict, 'pass' | 'reported'>): string {
  return v.reported === true ? 'reported' : v.pass === null ? NA : v.pass ? '**PASS**' : '**FAIL**';
}

/** A markdown table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)];
}

export function verdictTable(verdicts: readonly Verdict[]): string[] {
  return table(['check', 'result', 'target', 'verdict'], verdicts.map((v) => [v.name, v.result, v.target, verdictCell(v)]));
}

/** What bent a run's figures on the generator's side (it sent late, or used most of a core); null when nothing did. */
export function generatorCaveat(label: string, lagP99: number | null | undefined, cpuPercent: number): string | null {
  const parts: string[] = [];
  if (lagP99 !== null && lagP99 !== undefined && lagP99 > 50) parts.push(`sent late (send lag p99 ${num(lagP99, 0)} ms, counted in its latency)`);
  if (cpuPercent >= 90) parts.push(`used ${num(cpuPercent, 0)}% of a core`);
  return parts.length > 0 ? `${label}: the generator ${parts.join(' and ')}` : null;
}

/** A list section ("Problems and caveats"), or nothing when the list is empty. */
export function listSection(title: string, items: readonly string[]): string[] {
  return items.length === 0 ? [] : ['', `**${title}**`, '', ...items.map((item) => `- ${item}`)];
}

/** What every phase's results hold besides its own figures: when, whether a smoke run, what went wrong. */
export type Results<T> = { readonly date: string; readonly quick: boolean; readonly problems: string[] } & { readonly [K in keyof T]: T[K] };

/** One question of the bench: its file in bench/phases/ exports one of these. */
export interface Phase<R = unknown> {
  /** Its name: BENCH_PHASE selects it, bench/results/<name>.json and .md hold its last results. */
  readonly name: string;
  /** The question it answers, in one line. */
  readonly question: string;
  /** Left out of `npm run bench` unless BENCH_PHASE names it. */
  readonly optIn?: boolean;
  run(log: (line: string) => void): Promise<R>;
  verdicts(results: R): Verdict[];
  /** Its markdown section, verdicts first. */
  render(results: R): string;
}

/** Writes `files` (name → content) into `dir`, creating it; answers the paths written. */
export function writeResults(dir: string, files: Record<string, string>): string[] {
  mkdirSync(dir, { recursive: true });
  return Object.entries(files).map(([name, content]) => {
    writeFileSync(join(dir, name), content);
    return join(dir, name);
  });
}

/** The summary's head: one table of every verdict, by phase. */
export function summaryTable(rows: readonly { phase: string; verdict: Verdict }[]): string[] {
  return table(['phase', 'check', 'result', 'target', 'verdict'], rows.map(({ phase, verdict: v }) => [phase, v.name, v.result, v.target, verdictCell(v)]));
}

/** The same figure for the bare route, the floor and the sidecar (each the median of its runs). */
export type ThreeWay = { readonly figure: string; readonly digits: number } & { readonly [K in 'bare' | 'floor' | 'sidecar']: number | null };

/** floor / bare is what the design itself costs; sidecar / floor what the sidecar's own code adds (ADR 0011). */
export function threeWayTable(rows: readonly ThreeWay[]): string[] {
  const cells = (r: ThreeWay): string[] => [r.figure, num(r.bare, r.digits), num(r.floor, r.digits), num(r.sidecar, r.digits), times(r.floor, r.bare), times(r.sidecar, r.bare), times(r.sidecar, r.floor)];
  return table(['figure', 'bare', 'floor', 'sidecar', 'floor / bare', 'sidecar / bare', 'sidecar / floor'], rows.map(cells));
}
