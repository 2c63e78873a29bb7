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
 * Run alone: `DOWNSTREAM_URL=http://127.0.0.1:PORT/batch npx node bench/floor-server.ts`
 * (PORT 0, HOST 127.0.0.1, SHARD_COUNT 4, BATCH_MAX_WAIT_MS 10, BATCH_MAX_SIZE
 * 100). Prints one JSON line `{"msg":"floor ready","port":N}`.
 */
import Fastify, { type FastifyReply } from 'fastify';
import { Pool, type Dispatcher } from 'undici';
import { shardForKey } from '../src/actors/routing.ts';

const SHARD_COUNT = Number(process.env.SHARD_COUNT ?? 4);
const WINDOW_MS = Number(process.env.BATCH_MAX_WAIT_MS ?? 10);
const MAX_SIZE = Number(process.env.BATCH_MAX_SIZE ?? 100);
const downstream = new URL(process.env.DOWNSTREAM_URL ?? '');
const pool = new Pool(downstream.origin, { connections: SHARD_COUNT * 8, pipelining: 1, keepAliveTimeout: 30_000 });

interface OpenBatch {
  readonly shard: number;
  readonly bodies: Buffer[];
  readonly replies: FastifyReply[];
  bytes: number;
  timer: NodeJS.Timeout | null;
}

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

  constructor(batch: OpenBatch, id: string) {
    this.batch = batch;
    this.id = id;
  }

  onRequestStart(): void {}

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    this.ok = statusCode >= 200 && statusCode <= 299;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    let results: unknown;
    try {
      results = this.ok ? JSON.parse(Buffer.concat(this.chunks).toString('utf8')) : null;
    } catch {
      results = null;
    }
    const replies = this.batch.replies;
    if (!Array.isArray(results) || results.length !== replies.length) return this.fail();
    for (let i = 0; i < replies.length; i++) {
      replies[i]!.header('x-batch-id', this.id).header('x-shard', this.batch.shard).type('application/json').send(JSON.stringify(results[i]));
    }
  }

  onResponseError(): void {
    this.fail();
  }

  private fail(): void {
    for (const reply of this.batch.replies) reply.code(502).type('application/json').send('{"error":"downstream"}');
  }
}

const app = Fastify({ logger: false, keepAliveTimeout: 65_000 });
app.removeAllContentTypeParsers();
app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body: Buffer, done) => {
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
  const shard = shardForKey(key, SHARD_COUNT);
  let batch = open[shard];
  if (batch === null || batch === undefined) {
    batch = open[shard] = { shard, bodies: [], replies: [], bytes: 0, timer: null };
    const opened = batch;
    batch.timer = setTimeout(() => send(opened), WINDOW_MS);
  }
  batch.bodies.push(bytes);
  batch.replies.push(reply);
  batch.bytes += bytes.length + 1;
  if (batch.bodies.length >= MAX_SIZE) send(batch);
});

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
