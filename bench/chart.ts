/**
 * bench/results/chart.svg, hand-written SVG: left, latency percentiles against
 * offered rate (log scale, with the 15 ms overhead target); right, downstream
 * calls per 1,000 requests at each rate, labelled with the mean batch size.
 * The headline ratios run across the top.
 */
import { num } from './report.ts';
import type { BenchResults } from './types.ts';

const W = 980;
const H = 500;
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

interface Point {
  readonly x: number;
  readonly y: number | null;
}

interface Series {
  readonly name: string;
  readonly color: string;
  readonly dash?: string;
  readonly points: readonly Point[];
}

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function text(x: number, y: number, content: string, attrs = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(content)}</text>`;
}

function niceStep(range: number, ticks: number): number {
  const raw = range / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const f = raw / power;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
}

function kfmt(n: number): string {
  return n >= 1000 ? `${num(n / 1000, n % 1000 === 0 ? 0 : 1)}k` : num(n);
}

export function renderChart(r: BenchResults): string {
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ${FONT} font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
  );

  // Headline.
  const t = r.throughput;
  const l = r.latency;
  const p99 = l.sidecar.overhead?.p99;
  const headline = [
    `throughput ${num(t.ratio, 2)}× bare Fastify (target ≥ ${t.target}×)`,
    `overhead p99 ${p99 ? `${p99.overflow ? '> ' : ''}${num(p99.ms, 1)} ms` : 'n/a'} at ${kfmt(l.rate)} req/s (target ≤ ${l.targetMs} ms)`,
    `RSS ${r.memory.waitingRssBytes === null ? 'n/a' : `${num(r.memory.waitingRssBytes / 2 ** 20, 0)} MiB`} with ${kfmt(r.memory.requests)} waiting`,
  ].join('   ·   ');
  out.push(text(20, 28, 'Batching sidecar on this machine' + (r.meta.quick ? ' (BENCH_QUICK smoke run)' : ''), 'font-size="17" font-weight="600" fill="#111"'));
  out.push(text(20, 50, headline, 'font-size="13" fill="#333"'));

  // ---------------------------------------------------------- left: latency vs offered rate
  const points = [
    ...r.efficiency.map((s) => ({ rate: s.offeredRate, open: s.open, overhead: s.overhead })),
    { rate: l.rate, open: l.sidecar.open, overhead: l.sidecar.overhead },
  ].sort((a, b) => a.rate - b.rate);
  const series: Series[] = [
    { name: 'end-to-end p99', color: '#d62728', points: points.map((p) => ({ x: p.rate, y: p.open.latencyMs?.p99 ?? null })) },
    { name: 'end-to-end p50', color: '#ff9896', points: points.map((p) => ({ x: p.rate, y: p.open.latencyMs?.p50 ?? null })) },
    { name: 'overhead p99 (sidecar_overhead_seconds)', color: '#1f77b4', points: points.map((p) => ({ x: p.rate, y: p.overhead?.p99?.ms ?? null })) },
    { name: 'overhead p50', color: '#9ecae1', points: points.map((p) => ({ x: p.rate, y: p.overhead?.p50?.ms ?? null })) },
  ];
  const bareP99 = l.bare.open.latencyMs?.p99 ?? null;

  const A = { x: 70, y: 80, w: 470, h: 300 };
  const values = [
    ...series.flatMap((s) => s.points.map((p) => p.y)),
    bareP99,
    l.targetMs,
  ].filter((v): v is number => v !== null && Number.isFinite(v) && v > 0);
  const yMin = 10 ** Math.floor(Math.log10(Math.max(0.01, Math.min(...values))));
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...values) * 1.05));
  const xMax = Math.max(...points.map((p) => p.rate)) * 1.08;
  const X = (v: number): number => A.x + (v / xMax) * A.w;
  const Y = (v: number): number => A.y + A.h - ((Math.log10(v) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * A.h;

  out.push(text(A.x, A.y - 12, 'Latency against offered rate (open loop, ms, log scale)', 'font-size="13" font-weight="600" fill="#222"'));
  for (let d = yMin; d <= yMax * 1.0001; d *= 10) {
    for (const m of [1, 2, 5]) {
      const v = d * m;
      if (v > yMax * 1.0001) break;
      out.push(`<line x1="${A.x}" x2="${A.x + A.w}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}" stroke="${m === 1 ? '#ddd' : '#f0f0f0'}"/>`);
      out.push(text(A.x - 6, Y(v) + 4, v >= 1 ? num(v) : String(v), 'text-anchor="end" fill="#666"'));
    }
  }
  const xStep = niceStep(xMax, 6);
  for (let v = 0; v <= xMax; v += xStep) {
    out.push(`<line x1="${X(v).toFixed(1)}" x2="${X(v).toFixed(1)}" y1="${A.y + A.h}" y2="${A.y + A.h + 4}" stroke="#999"/>`);
    out.push(text(X(v), A.y + A.h + 17, kfmt(v), 'text-anchor="middle" fill="#666"'));
  }
  out.push(`<rect x="${A.x}" y="${A.y}" width="${A.w}" height="${A.h}" fill="none" stroke="#bbb"/>`);
  out.push(text(A.x + A.w / 2, A.y + A.h + 34, 'offered rate, req/s', 'text-anchor="middle" fill="#444"'));

  // Target line.
  const ty = Y(l.targetMs);
  out.push(`<line x1="${A.x}" x2="${A.x + A.w}" y1="${ty.toFixed(1)}" y2="${ty.toFixed(1)}" stroke="#2ca02c" stroke-width="1.5" stroke-dasharray="6 4"/>`);
  out.push(text(A.x + A.w - 4, ty - 5, `overhead p99 target ${l.targetMs} ms`, 'text-anchor="end" fill="#2ca02c"'));

  for (const s of series) {
    const drawn = s.points.filter((p): p is { x: number; y: number } => p.y !== null && Number.isFinite(p.y) && p.y > 0);
    if (drawn.length === 0) continue;
    const path = drawn.map((p, i) => `${i === 0 ? 'M' : 'L'}${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`).join(' ');
    out.push(`<path d="${path}" fill="none" stroke="${s.color}" stroke-width="2.2"/>`);
    for (const p of drawn) out.push(`<circle cx="${X(p.x).toFixed(1)}" cy="${Y(p.y).toFixed(1)}" r="3.2" fill="${s.color}"/>`);
  }
  if (bareP99 !== null && bareP99 > 0) {
    const bx = X(l.rate);
    const by = Y(bareP99);
    out.push(`<path d="M${bx - 5},${by - 5} L${bx + 5},${by + 5} M${bx - 5},${by + 5} L${bx + 5},${by - 5}" stroke="#555" stroke-width="2"/>`);
  }
  // Mark the 80%-of-max point.
  out.push(`<line x1="${X(l.rate).toFixed(1)}" x2="${X(l.rate).toFixed(1)}" y1="${A.y}" y2="${A.y + A.h}" stroke="#aaa" stroke-dasharray="2 3"/>`);
  out.push(text(X(l.rate) + 3, A.y + A.h - 6, '80% of max', 'fill="#888" font-size="11"'));

  // Legend: two columns under the plot.
  const legend = [...series.map((s) => ({ name: s.name, color: s.color, cross: false })), { name: 'bare Fastify end-to-end p99 (noise floor)', color: '#555', cross: true }];
  legend.forEach((item, i) => {
    const lx = A.x + (i % 2) * 260;
    const ly = A.y + A.h + 56 + Math.floor(i / 2) * 17;
    out.push(
      item.cross
        ? `<path d="M${lx + 4},${ly - 8} L${lx + 12},${ly} M${lx + 4},${ly} L${lx + 12},${ly - 8}" stroke="${item.color}" stroke-width="2"/>`
        : `<line x1="${lx}" x2="${lx + 16}" y1="${ly - 4}" y2="${ly - 4}" stroke="${item.color}" stroke-width="3"/>`,
    );
    out.push(text(lx + 22, ly, item.name, 'fill="#333" font-size="11"'));
  });

  // ---------------------------------------------------------- right: downstream calls per 1,000 requests
  const B = { x: 640, y: 80, w: 310, h: 300 };
  const bars = r.efficiency.map((s) => ({ rate: s.offeredRate, calls: s.batching.callsPer1000, size: s.batching.meanBatchSize }));
  const callMax = Math.max(10, ...bars.map((b) => b.calls ?? 0)) * 1.15;
  const step = niceStep(callMax, 5);
  const top = Math.ceil(callMax / step) * step;
  const BY = (v: number): number => B.y + B.h - (v / top) * B.h;
  out.push(text(B.x - 50, B.y - 12, 'Downstream calls per 1,000 requests', 'font-size="13" font-weight="600" fill="#222"'));
  for (let v = 0; v <= top + 1e-9; v += step) {
    out.push(`<line x1="${B.x}" x2="${B.x + B.w}" y1="${BY(v).toFixed(1)}" y2="${BY(v).toFixed(1)}" stroke="#eee"/>`);
    out.push(text(B.x - 6, BY(v) + 4, num(v), 'text-anchor="end" fill="#666"'));
  }
  const slot = B.w / Math.max(1, bars.length);
  bars.forEach((b, i) => {
    const cx = B.x + slot * (i + 0.5);
    const bw = Math.min(56, slot * 0.6);
    if (b.calls !== null) {
      out.push(`<rect x="${(cx - bw / 2).toFixed(1)}" y="${BY(b.calls).toFixed(1)}" width="${bw.toFixed(1)}" height="${(B.y + B.h - BY(b.calls)).toFixed(1)}" fill="#ff7f0e" rx="2"/>`);
      out.push(text(cx, BY(b.calls) - 18, num(b.calls, 1), 'text-anchor="middle" fill="#222" font-weight="600"'));
      out.push(text(cx, BY(b.calls) - 5, b.size === null ? '' : `${num(b.size, 0)} per batch`, 'text-anchor="middle" fill="#666" font-size="10.5"'));
    } else {
      out.push(text(cx, B.y + B.h - 6, 'n/a', 'text-anchor="middle" fill="#999"'));
    }
    out.push(text(cx, B.y + B.h + 17, `${kfmt(b.rate)}/s`, 'text-anchor="middle" fill="#666"'));
  });
  out.push(`<line x1="${B.x}" x2="${B.x + B.w}" y1="${B.y + B.h}" y2="${B.y + B.h}" stroke="#999"/>`);
  out.push(text(B.x + B.w / 2, B.y + B.h + 34, 'offered rate (without batching: 1,000 calls)', 'text-anchor="middle" fill="#444"'));

  out.push(
    text(
      20,
      H - 10,
      `${r.meta.date.slice(0, 19).replace('T', ' ')} UTC · ${r.meta.cpus} CPUs · downstream ${r.meta.downstreamLatencyMs} ms · ` +
        'all processes on one machine, 127.0.0.1 · bench/results/summary.md has every figure',
      'fill="#999" font-size="10.5"',
    ),
  );
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
