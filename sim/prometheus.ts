/**
 * A strict parser of the Prometheus text exposition format (0.0.4), shared by
 * the tests (which assert that /metrics parses) and the benchmarks.
 */

export interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function unescape(value: string): string {
  return value.replace(/\\(.)/g, (_, next: string) => (next === 'n' ? '\n' : next));
}

/** Parses every line; throws on one that is neither a comment nor a valid sample. */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) {
      if (line.startsWith('# TYPE') && !/^# TYPE \S+ (counter|gauge|histogram|summary|untyped)$/.test(line)) {
        throw new Error(`bad TYPE line: ${line}`);
      }
      continue;
    }
    const match = SAMPLE.exec(line);
    if (match === null) throw new Error(`not a Prometheus sample: ${line}`);
    const labels: Record<string, string> = {};
    for (const label of (match[2] ?? '').matchAll(LABEL)) labels[label[1]] = unescape(label[2]);
    const value = match[3] === '+Inf' ? Infinity : match[3] === '-Inf' ? -Infinity : Number(match[3]);
    if (Number.isNaN(value) && match[3].toLowerCase() !== 'nan') throw new Error(`bad value: ${line}`);
    samples.push({ name: match[1], labels, value });
  }
  return samples;
}

/** The value of one sample whose labels include `labels`; undefined if absent. */
export function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find(
    (sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
  )?.value;
}

export function sumOf(samples: Sample[], name: string): number {
  return samples.filter((sample) => sample.name === name).reduce((sum, sample) => sum + sample.value, 0);
}
