/**
 * The floor: the least batching route the fixed design allows (Fastify,
 * SHARD_COUNT shards by murmurhash3, a window from each batch's first item, a
 * size trigger, one undici POST per batch). Each caller gets its own result
 * with `x-batch-id` and `x-shard`; a failed call answers the whole batch 502.
 * Nothing else: no xstate, deadlines, admission control, metrics, traces,
 * drain or in-flight limit. The bench runs it beside the bare route and the
 * sidecar: floor / bare is what the design itself costs, sidecar / floor what
 * the sidecar's own code adds (ADR 0011; what it found: ADR 0013).
 *
 * FLOOR_CONTRACT=1, the contract floor (ADR 0023): the floor plus SPEC's work
 * per request and per batch, in its plainest form: UTF-8 checked (400),
 * `x-timeout-ms` and the edge stamp read, deadlines from the stamp (504 on
 * arrival, or at the deadline: one timer per batch), `server-timing`, SPEC's
 * request and batch metrics (the sidecar's Metrics, no process metrics) at GET
 * /metrics. None of the sidecar's own machinery (actors, admission, call limit).
 *
 * Run alone: `DOWNSTREAM_URL=http://127.0.0.1:PORT/batch npx node bench/floor-server.ts`
 * (PORT 0, HOST 127.0.0.1, SHARD_COUNT 4, BATCH_MAX_WAIT_MS 10, BATCH_MAX_SIZE
 * 100). Prints one JSON line `{"msg":"floor ready","port":N}`.
 */
import { isUtf8 } from 'node:buffer';
import Fastify, { type FastifyReply } from 'fastify';
import { Pool, type Dispatcher } from 'undici';
import { MAX_KEY_BYTES, shardForKey } from '../src/actors/routing.ts';
import { edgeWaitMs } from '../src/http/edge-stamp.ts';
import { Metrics } from '../src/telemetry/metrics.ts';

const SHARD_COUNT = Number(process.env.SHARD_COUNT ?? 4);
const WINDOW_MS = Number(process.env.BATCH_MAX_WAIT_MS ?? 10);
const MAX_SIZE = Number(process.env.BATCH_MAX_SIZE ?? 100);
const downstream = new URL(process.env.DOWNSTREAM_URL ?? '');
const CONTRACT = process.env.FLOOR_CONTRACT === '1';
const TIMEOUT_MS = 10_000; // REQUEST_TIMEOUT_MS's default
const pool = new Pool(downstream.origin, { connections: SHARD_COUNT * 8, pipelining: 1, keepAliveTimeout: 30_000 });

/** The contract's per-item figures (FLOOR_CONTRACT=1): when it came, its edge wait (-1: no stamp), its deadline. */
type Timing = { readonly [K in 'receivedAt' | 'edgeMs' | 'deadline']: number };

interface OpenBatch {
  readonly shard: number;
  readonly bodies: Buffer[];
  readonly replies: FastifyReply[];
  readonly timings: Timing[];
  bytes: number;
  timer: NodeJS.Timeout | null;
}

const metrics = new Metrics({ batchMaxSize: MAX_SIZE, processMetrics: false });
const tenths = (ms: number): number => (ms > 0 ? Math.round(ms * 10) / 10 : 0);

const open: (OpenBatch | null)[] = Array.from({ length: SHARD_COUNT }, () => null);
let sequence = 0;

function send(batch: OpenBatch): void {
  if (batch.timer !== null) clearTimeout(batch.timer);
  open[batch.shard] = null;
  const body = Buffer.allocUnsafe(batch.bytes + 1);
  let offset = 0;
  body[offset++] = 0x5b; // [
  for (let i = 0; i < batch.bodies.length; i++) {
    if (i > 0) body[offset++] = 0x2c; // ,
    offset += batch.bodies[i]!.copy(body, offset);
  }
  body[offset] = 0x5d; // ]
  const id = `floor-${batch.shard}-${++sequence}`;
  const headers = ['content-type', 'application/json', 'x-batch-id', id, 'x-shard', String(batch.shard)];
  pool.dispatch({ path: downstream.pathname, method: 'POST', headers, body }, new BatchAnswer(batch, id));
}

/** Answers each caller of one batch from the downstream's array (502 for all when the call fails). */
class BatchAnswer implements Dispatcher.DispatchHandler {
  private readonly batch: OpenBatch;
  private readonly id: string;
  private readonly chunks: Buffer[] = [];
  private ok = false;
  private readonly sentAt = CONTRACT ? performance.now() : 0;
  /** FLOOR_CONTRACT=1: at the earliest deadline of the batch, answers those that passed 504. */
  private readonly deadlineTimer: NodeJS.Timeout | null = null;

  constructor(batch: OpenBatch, id: string) {
    [this.batch, this.id] = [batch, id];
    if (!CONTRACT) return;
    const expire = (): void => batch.timings.forEach((timing, i) => timing.deadline <= performance.now() && refuse(batch.replies[i]!, 504, 'timeout'));
    this.deadlineTimer = setTimeout(expire, Math.min(...batch.timings.map((timing) => timing.deadline)) - this.sentAt);
  }

  onRequestStart(): void {}

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    this.ok = statusCode >= 200 && statusCode <= 299;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer);
    let results: unknown;
    try {
      results = this.ok ? JSON.parse(Buffer.concat(this.chunks).toString('utf8')) : null;
    } catch {
      results = null;
    }
    const replies = this.batch.replies;
    if (!Array.isArray(results) || results.length !== replies.length) return this.fail();
    // The plain floor does none of the contract's work: not even a clock read.
    const now = CONTRACT ? performance.now() : 0;
    const downstreamMs = now - this.sentAt;
    if (CONTRACT) metrics.batch({ batchId: this.id, size: replies.length, trigger: replies.length >= MAX_SIZE ? 'size' : 'time', status: 200, error: null }, downstreamMs);
    const shared = CONTRACT ? `, downstream;dur=${tenths(downstreamMs)}, sidecar;dur=` : '';
    for (let i = 0; i < replies.length; i++) {
      const reply = replies[i]!;
      if (CONTRACT) {
        const timing = this.batch.timings[i]!;
        if (reply.sent || timing.deadline <= now) {
          refuse(reply, 504, 'timeout'); // a no-op for one the deadline timer answered
          continue;
        }
        const sidecarMs = now - timing.receivedAt - downstreamMs;
        metrics.request('ok');
        metrics.overheadSeconds(sidecarMs / 1000);
        const serverTiming = `queue;dur=${tenths(this.sentAt - timing.receivedAt)}${shared}${tenths(sidecarMs)}`;
        reply.header('server-timing', timing.edgeMs < 0 ? serverTiming : `edge;dur=${tenths(timing.edgeMs)}, ${serverTiming}`);
      }
      reply.header('x-batch-id', this.id).header('x-shard', this.batch.shard).type('application/json').send(JSON.stringify(results[i]));
    }
  }

  onResponseError(): void {
    this.fail();
  }

  private fail(): void {
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer);
    for (const reply of this.batch.replies) if (!CONTRACT || !reply.sent) reply.code(502).type('application/json').send('{"error":"downstream"}');
  }
}

/** FLOOR_CONTRACT=1: a 504 (the deadline passed) or a 400 (a bad header), counted. */
function refuse(reply: FastifyReply, status: 504 | 400, error: string): void {
  if (reply.sent) return;
  metrics.request(status === 504 ? 'timeout' : 'bad_request');
  reply.code(status).type('application/json').send(JSON.stringify({ error }));
}

const app = Fastify({ logger: false, keepAliveTimeout: 65_000 });
app.removeAllContentTypeParsers();
app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body: Buffer, done) => {
  if (CONTRACT && !isUtf8(body)) {
    done(Object.assign(new Error('body is not UTF-8'), { statusCode: 400 }), undefined);
    return;
  }
  try {
    done(null, { bytes: body, value: JSON.parse(body.toString('utf8')) as unknown });
  } catch (error) {
    done(error as Error, undefined);
  }
});

app.post('/process', (request, reply) => {
  const { bytes, value } = request.body as { bytes: Buffer; value: { key?: unknown } | null };
  const header = request.headers['x-shard-key'];
  const key = typeof header === 'string' ? header : typeof value?.key === 'string' ? value.key : '';
  let timing: Timing | null = null;
  if (CONTRACT) {
    const receivedAt = performance.now();
    const edgeMs = edgeWaitMs(request.headers['x-request-start'], Date.now());
    if (edgeMs === edgeMs) metrics.edgeWaitSeconds(edgeMs / 1000); // NaN: no usable stamp
    const header = request.headers['x-timeout-ms'];
    const timeoutMs = typeof header === 'string' ? Number(header) : TIMEOUT_MS;
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0 || Buffer.byteLength(key) > MAX_KEY_BYTES) return refuse(reply, 400, 'x-timeout-ms or key');
    timing = { receivedAt, edgeMs: edgeMs === edgeMs ? edgeMs : -1, deadline: receivedAt - (edgeMs === edgeMs ? edgeMs : 0) + Math.min(timeoutMs, TIMEOUT_MS) };
    if (timing.deadline <= receivedAt) return refuse(reply, 504, 'timeout');
  }
  const shard = shardForKey(key, SHARD_COUNT);
  let batch = open[shard];
  if (batch === null || batch === undefined) {
    batch = open[shard] = { shard, bodies: [], replies: [], timings: [], bytes: 0, timer: null };
    const opened = batch;
    batch.timer = setTimeout(() => send(opened), WINDOW_MS);
  }
  batch.bodies.push(bytes);
  batch.replies.push(reply);
  if (timing !== null) batch.timings.push(timing);
  batch.bytes += bytes.length + 1;
  if (batch.bodies.length >= MAX_SIZE) send(batch);
});

if (CONTRACT) app.get('/metrics', async (_request, reply) => reply.type(metrics.contentType).send(await metrics.exposition()));

await app.listen({ port: Number(process.env.PORT ?? 0), host: process.env.HOST ?? '127.0.0.1' });
const address = app.server.address();
const port = typeof address === 'object' && address !== null ? address.port : 0;
process.stdout.write(`${JSON.stringify({ msg: 'floor ready', port })}\n`);

const stop = (): void => {
  app.server.closeAllConnections();
  void app.close().then(() => pool.close()).then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
