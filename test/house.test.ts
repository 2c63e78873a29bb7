import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// Issue 21, "a house a newcomer can hold in their head": the limits that keep it so.
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TREES = ['src', 'bench', 'sim', 'demo'];

function files(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'results' || entry.name === 'node_modules' ? [] : files(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

const lines = (file: string): number => readFileSync(join(ROOT, file), 'utf8').split('\n').length - 1;
const all = TREES.flatMap(files);

/** The relative modules a file imports or re-exports, type-only ones included, as paths from the root. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const found = [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?\bfrom\s+['"](\.{1,2}\/[^'"]+)['"]/gm), ...text.matchAll(/^\s*import\s+['"](\.{1,2}\/[^'"]+)['"]/gm)];
  return found.map((m) => relative(ROOT, resolve(ROOT, dirname(file), m[1]!)));
}

describe('the house', () => {
  it('has no TypeScript file over 400 lines in src/, bench/, sim/ or demo/', () => {
    expect(all.filter((file) => lines(file) > 400).map((file) => `${file}: ${lines(file)} lines`)).toEqual([]);
  });

  it('has no import cycle among them, type-only imports included', () => {
    const graph = new Map(all.map((file) => [file, importsOf(file).filter((to) => all.includes(to))]));
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, path: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') return void cycles.push([...path.slice(path.indexOf(file)), file].join(' → '));
      state.set(file, 'open');
      for (const to of graph.get(file) ?? []) visit(to, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of all) visit(file, []);
    expect(cycles).toEqual([]);
  });

  it('keeps bench/ at 3,000 lines of TypeScript at most', () => {
    expect(files('bench').reduce((n, file) => n + lines(file), 0)).toBeLessThanOrEqual(3000);
  });

  it('keeps README.md to a few screens: 15,000 characters at most', () => {
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8').length).toBeLessThanOrEqual(15_000);
  });
});
