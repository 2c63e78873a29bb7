/**
 * bench/results/chart.svg, hand-written SVG: on the left lines against
 * offered rate (log scale: client p99 of each variant), on the right bars
 * (downstream calls per 1,000 requests, labelled). The caller picks the figures.
 */
import { num } from './report.ts';

export interface ChartSeries {
  readonly name: string;
  readonly color: string;
  readonly points: readonly { readonly x: number; readonly y: number | null }[];
}

export interface Chart {
  readonly title: string;
  readonly subtitle: string;
  readonly lines: { readonly title: string; readonly series: readonly ChartSeries[]; readonly target?: { readonly y: number; readonly label: string } };
  readonly bars: { readonly title: string; readonly bars: readonly { readonly label: string; readonly value: number | null; readonly note: string }[] };
  readonly footer: string;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const text = (x: number, y: number, s: string, attrs = ''): string => `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`;
const k = (n: number): string => (n >= 1000 ? `${num(n / 1000, n % 1000 === 0 ? 0 : 1)}k` : num(n, 0));

export function renderChart(c: Chart): string {
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="980" height="470" viewBox="0 0 980 470" font-family="system-ui, sans-serif" font-size="12">`,
    '<rect width="980" height="470" fill="#fff"/>',
    text(20, 28, c.title, 'font-size="17" font-weight="600"'),
    text(20, 50, c.subtitle, 'font-size="13" fill="#333"'),
  ];
  // Left: lines, log y.
  const A = { x: 70, y: 80, w: 470, h: 300 };
  const ys = [...c.lines.series.flatMap((s) => s.points.map((p) => p.y)), c.lines.target?.y].filter((v): v is number => v !== null && v !== undefined && v > 0);
  const xs = c.lines.series.flatMap((s) => s.points.map((p) => p.x));
  const [yMin, yMax] = [10 ** Math.floor(Math.log10(Math.min(1, ...ys))), 10 ** Math.ceil(Math.log10(Math.max(10, ...ys) * 1.05))];
  const xMax = Math.max(1, ...xs) * 1.08;
  const X = (v: number): number => A.x + (v / xMax) * A.w;
  const Y = (v: number): number => A.y + A.h - ((Math.log10(v) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * A.h;
  out.push(text(A.x, A.y - 12, c.lines.title, 'font-size="13" font-weight="600"'), `<rect x="${A.x}" y="${A.y}" width="${A.w}" height="${A.h}" fill="none" stroke="#bbb"/>`);
  for (let d = yMin; d <= yMax; d *= 10) out.push(`<line x1="${A.x}" x2="${A.x + A.w}" y1="${Y(d).toFixed(1)}" y2="${Y(d).toFixed(1)}" stroke="#ddd"/>`, text(A.x - 6, Y(d) + 4, num(d, d < 1 ? 1 : 0), 'text-anchor="end" fill="#666"'));
  for (const x of [...new Set(xs)]) out.push(text(X(x), A.y + A.h + 17, k(x), 'text-anchor="middle" fill="#666"'));
  out.push(text(A.x + A.w / 2, A.y + A.h + 34, 'offered rate, req/s', 'text-anchor="middle" fill="#444"'));
  if (c.lines.target !== undefined) {
    const ty = Y(c.lines.target.y).toFixed(1);
    out.push(`<line x1="${A.x}" x2="${A.x + A.w}" y1="${ty}" y2="${ty}" stroke="#2ca02c" stroke-dasharray="6 4"/>`, text(A.x + A.w - 4, Number(ty) - 5, c.lines.target.label, 'text-anchor="end" fill="#2ca02c"'));
  }
  c.lines.series.forEach((s, i) => {
    const drawn = s.points.filter((p): p is { x: number; y: number } => p.y !== null && p.y > 0);
    if (drawn.length > 0) out.push(`<path d="${drawn.map((p, j) => `${j === 0 ? 'M' : 'L'}${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`).join(' ')}" fill="none" stroke="${s.color}" stroke-width="2.2"/>`);
    for (const p of drawn) out.push(`<circle cx="${X(p.x).toFixed(1)}" cy="${Y(p.y).toFixed(1)}" r="3.2" fill="${s.color}"/>`);
    const ly = A.y + A.h + 56 + i * 16;
    out.push(`<line x1="${A.x}" x2="${A.x + 16}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="3"/>`, text(A.x + 22, ly, s.name, 'fill="#333" font-size="11"'));
  });
  // Right: bars.
  const B = { x: 640, y: 80, w: 310, h: 300 };
  const top = Math.max(10, ...c.bars.bars.map((b) => b.value ?? 0)) * 1.2;
  const BY = (v: number): number => B.y + B.h - (v / top) * B.h;
  const slot = B.w / Math.max(1, c.bars.bars.length);
  out.push(text(B.x - 50, B.y - 12, c.bars.title, 'font-size="13" font-weight="600"'), `<line x1="${B.x}" x2="${B.x + B.w}" y1="${B.y + B.h}" y2="${B.y + B.h}" stroke="#999"/>`);
  c.bars.bars.forEach((b, i) => {
    const cx = B.x + slot * (i + 0.5);
    const bw = Math.min(56, slot * 0.6);
    if (b.value !== null) {
      out.push(`<rect x="${(cx - bw / 2).toFixed(1)}" y="${BY(b.value).toFixed(1)}" width="${bw.toFixed(1)}" height="${(B.y + B.h - BY(b.value)).toFixed(1)}" fill="#ff7f0e" rx="2"/>`);
      out.push(text(cx, BY(b.value) - 18, num(b.value, 1), 'text-anchor="middle" font-weight="600"'), text(cx, BY(b.value) - 5, b.note, 'text-anchor="middle" fill="#666" font-size="10.5"'));
    }
    out.push(text(cx, B.y + B.h + 17, b.label, 'text-anchor="middle" fill="#666"'));
  });
  out.push(text(20, 460, c.footer, 'fill="#999" font-size="10.5"'), '</svg>');
  return `${out.join('\n')}\n`;
}
