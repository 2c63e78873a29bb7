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
 * FLOOR_CONTRACT=1 is the contract floor: the floor plus what SPEC asks of
 * every request and every batch, each in its plainest form. UTF-8 checked (400);
 * `x-timeout-ms` and the edge stamp read, the deadline counted from the stamp
 * (504 on arrival when it has passed, and at it while the call runs, one timer
 * per batch); `server-timing` (with `edge;dur=`); prom-client's
 * sidecar_requests_total{outcome}, sidecar_overhead_seconds and
 * sidecar_edge_wait_seconds per answer, sidecar_batch_size,
 * sidecar_batches_total{trigger} and sidecar_downstream_duration_seconds per
 * batch, at GET /metrics. Still none of the sidecar's own machinery: actors,
 * admission law, call limit, drain, retries. contract / floor is what the
 * contract costs; sidecar / contract what the sidecar's own design adds
 * (ADR 0023).
 *
 * Run alone: `DOWNSTREAM_URL=http://127.0.0.1:PORT/batch npx node bench/floor-server.ts`
 * (PORT 0, HOST 127.0.0.1, SHARD_COUNT 4, BATCH_MAX_WAIT_MS 10, BATCH_MAX_SIZE
 * 100). Prints one JSON line `{"msg":"floor ready","port":N}`.
 */
import { isUtf8 } from 'node:buffer';
import Fastify, { type FastifyReply } from 'fastify';
import { Counter, Histogram, register } from 'prom-client';
import { Pool, type Dispatcher } from 'undici';
import { MAX_KEY_BYTES, shardForKey } from '../src/actors/routing.ts';
import { edgeWaitMs } from '../src/http/edge-stamp.ts';

const SHARD_COUNT = Number(process.env.SHARD_COUNT ?? 4);
const WINDOW_MS = Number(process.env.BATCH_MAX_WAIT_MS ?? 10);
const MAX_SIZE = Number(process.env.BATCH_MAX_SIZE ?? 100);
const downstream = new URL(process.env.DOWNSTREAM_URL ?? '');
const CONTRACT = process.env.FLOOR_CONTRACT === '1';
const TIMEOUT_MS = 10_000; // REQUEST_TIMEOUT_MS's default
const pool = new Pool(downstream.origin, { connections: SHARD_COUNT * 8, pipelining: 1, keepAliveTimeout: 30_000 });

/** The contract's per-item figures (FLOOR_CONTRACT=1): when it came, its edge wait (-1: no stamp), its deadline. */
interface Timing {
  readonly receivedAt: number;
  readonly edgeMs: number;
  readonly deadline: number;
}

interface OpenBatch {
  readonly shard: number;
  readonly bodies: Buffer[];
  readonly replies: FastifyReply[];
  readonly timings: Timing[];
  bytes: number;
  timer: NodeJS.Timeout | null;
}

const seconds = (name: string, help: string, buckets: number[]): Histogram => new Histogram({ name, help, buckets });
const outcomes = new Counter({ name: 'sidecar_requests_total', help: 'Requests by outcome.', labelNames: ['outcome'] });
const [okCount, timeoutCount, invalidCount] = [outcomes.labels('ok'), outcomes.labels('timeout'), outcomes.labels('invalid')];
const overhead = seconds('sidecar_overhead_seconds', 'Time in the sidecar minus the downstream call.', [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]);
const edgeWait = seconds('sidecar_edge_wait_seconds', 'Wait before the sidecar, from the edge stamp.', [0.001, 0.005, 0.025, 0.1, 0.5, 1, 5]);
const downstreamSeconds = seconds('sidecar_downstream_duration_seconds', 'Downstream calls.', [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5]);
const batchSize = new Histogram({ name: 'sidecar_batch_size', help: 'Items per batch.', buckets: [1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100] });
const batches = new Counter({ name: 'sidecar_batches_total', help: 'Batches by trigger.', labelNames: ['trigger'] });
const [bySize, byTime] = [batches.labels('size'), batches.labels('time')];
const tenths = (ms: number): number => (ms > 0 ? Math.round(ms * 10) / 10 : 0);

const open: (OpenBatch | null)[] = Array.from({ length: SHARD_COUNT }, () => null);
let sequence = 0;

function send(batch: OpenBatch): void {
  if (batch.timer !== null) clearTimeout(batch.timer);
  open[batch.shard] = null;
  if (CONTRACT) {
    batchSize.observe(batch.bodies.length);
    (batch.bodies.length >= MAX_SIZE ? bySize : byTime).inc();
  }
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
  private readonly sentAt = performance.now();
  /** FLOOR_CONTRACT=1: answers the items whose deadline passes while the call runs, at the earliest of them. */
  private readonly deadlineTimer: NodeJS.Timeout | null = null;

  constructor(batch: OpenBatch, id: string) {
    this.batch = batch;
    this.id = id;
    if (CONTRACT) {
      let earliest = Infinity;
      for (const timing of batch.timings) if (timing.deadline < earliest) earliest = timing.deadline;
      this.deadlineTimer = setTimeout(() => this.expire(), earliest - this.sentAt);
    }
  }

  private expire(): void {
    const now = performance.now();
    for (let i = 0; i < this.batch.replies.length; i++) if (this.batch.timings[i]!.deadline <= now) timedOut(this.batch.replies[i]!);
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
    const now = CONTRACT ? performance.now() : 0;
    const downstreamMs = now - this.sentAt;
    if (CONTRACT) downstreamSeconds.observe(downstreamMs / 1000);
    const shared = `, downstream;dur=${tenths(downstreamMs)}, sidecar;dur=`;
    for (let i = 0; i < replies.length; i++) {
      const reply = replies[i]!;
      if (reply.sent) continue;
      if (CONTRACT) {
        const timing = this.batch.timings[i]!;
        if (timing.deadline <= now) {
          timedOut(reply);
          continue;
        }
        const sidecarMs = now - timing.receivedAt - downstreamMs;
        okCount.inc();
        overhead.observe(sidecarMs / 1000);
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
    for (const reply of this.batch.replies) if (!reply.sent) reply.code(502).type('application/json').send('{"error":"downstream"}');
  }
}

function timedOut(reply: FastifyReply): void {
  if (reply.sent) return;
  timeoutCount.inc();
  reply.code(504).type('application/json').send('{"error":"timeout"}');
}

function invalid(reply: FastifyReply, message: string): void {
  invalidCount.inc();
  reply.code(400).type('application/json').send(JSON.stringify({ error: message }));
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
    if (edgeMs === edgeMs) edgeWait.observe(edgeMs / 1000); // NaN: no usable stamp
    const header = request.headers['x-timeout-ms'];
    const timeoutMs = typeof header === 'string' ? Number(header) : TIMEOUT_MS;
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) return invalid(reply, 'x-timeout-ms');
    if (Buffer.byteLength(key) > MAX_KEY_BYTES) return invalid(reply, 'key too long');
    timing = { receivedAt, edgeMs: edgeMs === edgeMs ? edgeMs : -1, deadline: receivedAt - (edgeMs === edgeMs ? edgeMs : 0) + Math.min(timeoutMs, TIMEOUT_MS) };
    if (timing.deadline <= receivedAt) return timedOut(reply);
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

if (CONTRACT) app.get('/metrics', async (_request, reply) => reply.type(register.contentType).send(await register.metrics()));

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
