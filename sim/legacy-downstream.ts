/**
 * A simulated legacy downstream: takes `POST /batch` (any path but /control)
 * with a JSON array and answers an array with one result per item,
 * `{ "echo": <item> }`. Used by the demo, the tests and the benchmarks; its
 * behaviour and capacity can be changed while it runs, to inject faults.
 *
 * The model: a pool of `workers` (sim/worker-pool.ts; 0, the default, means no
 * limit: every call is served at once, in parallel). A call holds one worker for
 * `latencyMs + perItemMs × items`, plus up to `jitterMs` at random, plus
 * `spikeMs` for a `spikeRate` share of calls. Calls that find every worker busy
 * wait in a FIFO, in arrival order; with `queueLimit` > 0, a call that would
 * wait behind that many is answered 503 `{"error":"legacy queue full"}` at once.
 * Like a real legacy system, it does not notice a client that went away: the
 * call is still processed and holds its worker for its full time; only the
 * answer is not written. A 'hang' call holds its worker until its client goes
 * away. Its capacity is then `maxItemsPerSecond()` items/s.
 *
 * `GET /stats` answers `stats()`: `{ batches, p50, p99, max }`, the hold times
 * (ms, from the request body's last byte to the answer written, queue wait
 * included) of the calls answered since the last reset, over the last 200,000
 * at most; and the capacity figures (items, seconds, itemsPerSecond,
 * callsPerSecond, queueWait {p50, p99, max}, refused, queued, busy, maxBusy,
 * abandoned, workers, latencyMs, perItemMs, queueLimit). `GET /stats?reset=1`
 * answers the same, then resets them and the clock. `POST /control` with a JSON
 * object of numeric option changes applies them with set() and answers the
 * options (a bench can so change the capacity of a sim in another process).
 * Every other non-POST request gets 405.
 *
 * Run alone: `node sim/legacy-downstream.ts` with PORT, HOST, LATENCY_MS,
 * JITTER_MS, FAILURE_RATE, WORKERS, PER_ITEM_MS, QUEUE_LIMIT in the environment.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SampleRing, type SampleSummary } from './sample-ring.ts';
import { LEGACY_DEFAULTS, maxItemsPerSecond, parseControl, type LegacyOptions } from './legacy-options.ts';
import { WorkerPool } from './worker-pool.ts';

export { maxItemsPerSecond, parseControl, type Behaviour, type LegacyOptions } from './legacy-options.ts';

export interface ReceivedBatch {
  readonly batchId: string;
  readonly shard: string;
  readonly traceparent: string | undefined;
  readonly items: unknown[];
  /** The request body exactly as received. */
  readonly body: string;
  readonly receivedAt: number;
}

/** How many hold times (and queue waits) GET /stats looks back over. */
const HOLD_RING = 200_000;

export interface HoldStats extends SampleSummary {
  /** Batches answered since the last reset (the percentiles cover the last HOLD_RING of them). */
  readonly batches: number;
}

/** What GET /stats answers. */
export interface DownstreamStats extends HoldStats {
  /** Items in the calls answered since the last reset (answers their clients had gone from included). */
  readonly items: number;
  /** Seconds since the last reset. */
  readonly seconds: number;
  readonly itemsPerSecond: number;
  readonly callsPerSecond: number;
  /** ms from a call's last body byte to a worker taking it, over the calls started since the last reset. */
  readonly queueWait: SampleSummary;
  /** Calls answered 503 because the queue was at queueLimit, since the last reset. */
  readonly refused: number;
  /** Calls processed whose client had gone by the time of the answer, since the last reset. */
  readonly abandoned: number;
  /** Calls waiting for a worker now. */
  readonly queued: number;
  /** Workers busy now. */
  readonly busy: number;
  /** The most workers busy at once since the last reset. */
  readonly maxBusy: number;
  readonly workers: number;
  readonly latencyMs: number;
  readonly perItemMs: number;
  readonly queueLimit: number;
}

/** A call accepted and not yet answered: waiting for a worker, or held by one. */
interface Call {
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
  readonly items: unknown[];
  readonly shard: string;
  /** performance.now() when the body's last byte came. */
  readonly arrived: number;
}

export class LegacyDownstream {
  readonly server: Server;
  readonly options: LegacyOptions;
  readonly received: ReceivedBatch[] = [];
  /** Calls accepted (not refused) and items in them, since reset(). */
  batches = 0;
  items = 0;
  /** sizes[n]: how many batches of n items arrived. */
  readonly sizes: number[] = [];
  /** Total simulated processing time of answered batches, ms. */
  busyMs = 0;
  /** Calls accepted and not answered yet: waiting for a worker or held by one. */
  inflight = 0;
  maxInflight = 0;
  private readonly inflightByShard = new Map<string, number>();
  readonly maxInflightByShard = new Map<string, number>();
  /** Hold times and queue waits (ms), rings; and what GET /stats counts since its last reset. */
  private readonly holds = new SampleRing(HOLD_RING);
  private readonly queueWaits = new SampleRing(HOLD_RING);
  private answeredItems = 0;
  private refused = 0;
  private abandoned = 0;
  private statsSince = performance.now();
  private readonly pool: WorkerPool<Call>;

  private constructor(options: LegacyOptions) {
    this.options = options;
    this.pool = new WorkerPool<Call>(
      () => this.options,
      (call, release) => this.process(call, release),
    );
    this.server = createServer({ keepAliveTimeout: 60_000 }, (request, response) => this.handle(request, response));
  }

  static async start(options: Partial<LegacyOptions> & { port?: number; host?: string } = {}): Promise<LegacyDownstream> {
    const { port = 0, host = '127.0.0.1', ...rest } = options;
    const downstream = new LegacyDownstream({ ...LEGACY_DEFAULTS, ...rest });
    await new Promise<void>((resolve) => downstream.server.listen(port, host, resolve));
    return downstream;
  }

  /** See the function of that name. */
  static maxItemsPerSecond = maxItemsPerSecond;

  get url(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/batch`;
  }

  /** Changes options at once: more workers start waiting calls now; fewer let the running ones finish first. */
  set(options: Partial<LegacyOptions>): void {
    Object.assign(this.options, options);
    this.pool.pump();
  }

  /** Calls waiting for a worker now, and workers busy now. */
  get queued(): number {
    return this.pool.queued;
  }

  get busy(): number {
    return this.pool.busy;
  }

  /** Forgets what was received (counts, records, high-water marks) and the stats. */
  reset(): void {
    this.received.length = 0;
    this.batches = 0;
    this.items = 0;
    this.sizes.length = 0;
    this.busyMs = 0;
    this.maxInflight = 0;
    this.maxInflightByShard.clear();
    this.resetStats();
  }

  /** Forgets what GET /stats reports and restarts its clock (GET /stats?reset=1). */
  resetStats(): void {
    this.holds.reset();
    this.queueWaits.reset();
    this.answeredItems = 0;
    this.refused = 0;
    this.abandoned = 0;
    this.pool.resetMax();
    this.statsSince = performance.now();
  }

  /** The same as resetStats() (its former name). */
  resetHolds(): void {
    this.resetStats();
  }

  /** Count, p50, p99 and max of the hold times recorded since the last reset. */
  holdStats(): HoldStats {
    return { batches: this.holds.count, ...this.holds.summary() };
  }

  /** What GET /stats answers. */
  stats(): DownstreamStats {
    const seconds = (performance.now() - this.statsSince) / 1000;
    const { workers, latencyMs, perItemMs, queueLimit } = this.options;
    return {
      ...this.holdStats(),
      items: this.answeredItems,
      seconds,
      itemsPerSecond: seconds > 0 ? this.answeredItems / seconds : 0,
      callsPerSecond: seconds > 0 ? this.holds.count / seconds : 0,
      queueWait: this.queueWaits.summary(),
      refused: this.refused,
      abandoned: this.abandoned,
      queued: this.pool.queued,
      busy: this.pool.busy,
      maxBusy: this.pool.maxBusy,
      workers,
      latencyMs,
      perItemMs,
      queueLimit,
    };
  }

  async close(): Promise<void> {
    // Waiting calls are dropped with their connections; running ones end within their hold time.
    for (const call of this.pool.clear()) this.track(call.shard, -1);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    if (request.method !== 'POST') {
      if (request.method === 'GET' && (request.url === '/stats' || request.url?.startsWith('/stats?') === true)) {
        const stats = this.stats();
        if (new URLSearchParams(request.url.slice('/stats'.length)).get('reset') === '1') this.resetStats();
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats));
        return;
      }
      response.writeHead(405).end();
      return;
    }
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    if (request.url === '/control') request.on('end', () => this.control(response, Buffer.concat(chunks).toString('utf8')));
    else request.on('end', () => this.arrive(request, response, Buffer.concat(chunks), performance.now()));
  }

  private control(response: ServerResponse, body: string): void {
    const changes = parseControl(body);
    if (typeof changes === 'string') {
      response.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: changes }));
      return;
    }
    this.set(changes);
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.options));
  }

  /** A call's body has come (at `arrived`, performance.now()): refuse it, or count it and hand it to the pool. */
  private arrive(request: IncomingMessage, response: ServerResponse, body: Buffer, arrived: number): void {
    let items: unknown[];
    try {
      items = JSON.parse(body.toString('utf8')) as unknown[];
      if (!Array.isArray(items)) throw new Error('not an array');
    } catch {
      response.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"body must be a JSON array"}');
      this.holds.add(performance.now() - arrived);
      return;
    }
    if (this.pool.full()) {
      this.refused++;
      response.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"legacy queue full"}');
      return;
    }
    const shard = String(request.headers['x-shard'] ?? '');
    this.batches++;
    this.items += items.length;
    this.sizes[items.length] = (this.sizes[items.length] ?? 0) + 1;
    if (this.options.record) {
      this.received.push({
        batchId: String(request.headers['x-batch-id'] ?? ''),
        shard,
        traceparent: request.headers.traceparent as string | undefined,
        items,
        body: body.toString('utf8'),
        receivedAt: performance.now(),
      });
    }
    this.track(shard, +1);
    this.pool.submit({ request, response, items, shard, arrived });
  }

  /** A worker has taken the call: hold it for its time, then answer (or, its client gone, just free the worker). */
  private process(call: Call, release: () => void): void {
    const { request, response, items, shard, arrived } = call;
    this.queueWaits.add(performance.now() - arrived);
    const { latencyMs, perItemMs, jitterMs, failureRate, spikeRate, spikeMs, faultShard } = this.options;
    const behaviour = faultShard === null || faultShard === shard ? this.options.behaviour : 'ok';
    if (behaviour === 'hang') {
      const free = (): void => {
        this.track(shard, -1);
        release();
      };
      if (request.socket.destroyed) free();
      else response.once('close', free);
      return;
    }
    const spike = spikeRate > 0 && Math.random() < spikeRate ? spikeMs : 0;
    const delay = latencyMs + perItemMs * items.length + spike + (jitterMs > 0 ? Math.random() * jitterMs : 0);
    setTimeout(() => {
      this.track(shard, -1);
      this.busyMs += delay;
      release();
      if (behaviour === 'reset') {
        request.socket.destroy();
        return;
      }
      if (request.socket.destroyed) {
        // Its client went away: the work is done all the same (a legacy system does not notice), the answer goes nowhere.
        this.abandoned++;
        this.answered(call);
        return;
      }
      if (
        behaviour === 'status-500' ||
        (failureRate > 0 && Math.random() < failureRate) ||
        (this.options.poisonField !== null && items.some((item) => field(item, this.options.poisonField!)))
      ) {
        response.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"legacy failure"}');
        this.answered(call);
        return;
      }
      let payload: string;
      if (behaviour === 'not-json') payload = '<html>oops</html>';
      else if (behaviour === 'not-array') payload = '{"results":[]}';
      else {
        const { rejectField, padBytes } = this.options;
        const pad = padBytes > 0 ? 'x'.repeat(padBytes) : undefined;
        const results = items.map((item) =>
          rejectField !== null && field(item, rejectField) !== undefined
            ? { error: field(item, rejectField) }
            : pad === undefined
              ? { echo: item }
              : { echo: item, pad },
        );
        if (behaviour === 'wrong-length') results.pop();
        try {
          payload = JSON.stringify(results);
        } catch {
          response.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"cannot serialise"}');
          this.answered(call);
          return;
        }
      }
      if (behaviour === 'truncated') payload = payload.slice(0, Math.floor(payload.length / 2));
      if (behaviour === 'reset-mid-body') {
        const half = Buffer.from(payload.slice(0, Math.floor(payload.length / 2)));
        response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
        response.write(half, () => request.socket.destroy());
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end(payload);
      this.answered(call);
    }, delay);
  }

  /** Counts an answered call in GET /stats: its hold time and its items. */
  private answered(call: Call): void {
    this.holds.add(performance.now() - call.arrived);
    this.answeredItems += call.items.length;
  }

  private track(shard: string, delta: number): void {
    this.inflight += delta;
    if (this.inflight > this.maxInflight) this.maxInflight = this.inflight;
    const now = (this.inflightByShard.get(shard) ?? 0) + delta;
    this.inflightByShard.set(shard, now);
    if (now > (this.maxInflightByShard.get(shard) ?? 0)) this.maxInflightByShard.set(shard, now);
  }
}

/** An object item's field, or undefined. */
function field(item: unknown, name: string): unknown {
  return typeof item === 'object' && item !== null && !Array.isArray(item) ? (item as Record<string, unknown>)[name] : undefined;
}

if (import.meta.main) {
  const env = process.env;
  const downstream = await LegacyDownstream.start({
    port: Number(env.PORT ?? 9090),
    host: env.HOST ?? '0.0.0.0',
    latencyMs: Number(env.LATENCY_MS ?? 50),
    jitterMs: Number(env.JITTER_MS ?? 10),
    failureRate: Number(env.FAILURE_RATE ?? 0),
    workers: Number(env.WORKERS ?? 0),
    perItemMs: Number(env.PER_ITEM_MS ?? 0),
    queueLimit: Number(env.QUEUE_LIMIT ?? 0),
  });
  process.stdout.write(`legacy downstream listening on ${downstream.url}\n`);
  const stop = () => void downstream.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
