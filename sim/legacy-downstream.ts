/**
 * A simulated legacy downstream: takes `POST /batch` with a JSON array and,
 * after a configurable latency (plus jitter), answers an array with one result
 * per item, `{ "echo": <item> }`. Used by the demo, the tests and the
 * benchmarks; its behaviour can be changed while it runs, to inject faults.
 *
 * `GET /stats` answers `{ batches, p50, p99, max }`: the hold times (ms, from the
 * request body's last byte to the answer written) of the batches answered since
 * the last reset, over the last 200,000 at most; `GET /stats?reset=1`
 * answers the same, then resets them. Every other non-POST request gets 405.
 *
 * Run alone: `node sim/legacy-downstream.ts` with PORT, LATENCY_MS, JITTER_MS,
 * FAILURE_RATE in the environment.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Behaviour =
  | 'ok'
  /** 500 for every batch. */
  | 'status-500'
  /** 2xx with one result too few. */
  | 'wrong-length'
  /** 2xx with a body that is not JSON. */
  | 'not-json'
  /** 2xx with a JSON object instead of an array. */
  | 'not-array'
  /** Never answers. */
  | 'hang'
  /** Destroys the connection without answering. */
  | 'reset'
  /** 2xx whose JSON body stops half-way (complete HTTP message, cut JSON). */
  | 'truncated'
  /** Sends the headers and half the body, then destroys the connection. */
  | 'reset-mid-body';

export interface LegacyOptions {
  latencyMs: number;
  jitterMs: number;
  /** Share of batches (0..1) answered 500 at random. */
  failureRate: number;
  /** Share of batches (0..1) delayed by an extra `spikeMs` (latency spikes). */
  spikeRate: number;
  spikeMs: number;
  behaviour: Behaviour;
  /** When set, `behaviour` applies only to batches from this shard (x-shard); others get 'ok'. */
  faultShard: string | null;
  /** Keep each batch's items and headers (tests); benchmarks leave it off. */
  record: boolean;
  /** When set, a batch holding an object item whose field of this name is truthy is answered 500 whole (a poison item). */
  poisonField: string | null;
  /** When set, an object item with this field gets `{ error: <the field's value> }` as its result instead of the echo. */
  rejectField: string | null;
  /** Bytes of filler added to every result (`{ echo, pad }`): heavy answers that keep the sidecar's event loop busy. */
  padBytes: number;
}

export interface ReceivedBatch {
  readonly batchId: string;
  readonly shard: string;
  readonly traceparent: string | undefined;
  readonly items: unknown[];
  /** The request body exactly as received. */
  readonly body: string;
  readonly receivedAt: number;
}

/** How many hold times GET /stats looks back over. */
const HOLD_RING = 200_000;

export interface HoldStats {
  /** Batches answered since the last reset (the percentiles cover the last HOLD_RING of them). */
  readonly batches: number;
  readonly p50: number | null;
  readonly p99: number | null;
  readonly max: number | null;
}

const DEFAULTS: LegacyOptions = {
  latencyMs: 5,
  jitterMs: 0,
  failureRate: 0,
  spikeRate: 0,
  spikeMs: 0,
  behaviour: 'ok',
  faultShard: null,
  record: false,
  poisonField: null,
  rejectField: null,
  padBytes: 0,
};

export class LegacyDownstream {
  readonly server: Server;
  readonly options: LegacyOptions;
  readonly received: ReceivedBatch[] = [];
  batches = 0;
  items = 0;
  /** sizes[n]: how many batches of n items arrived. */
  readonly sizes: number[] = [];
  /** Total simulated processing time of answered batches, ms. */
  busyMs = 0;
  inflight = 0;
  maxInflight = 0;
  private readonly inflightByShard = new Map<string, number>();
  readonly maxInflightByShard = new Map<string, number>();
  /** Hold times (ms) of answered batches, a ring; `holdCount` of them recorded since the last reset. */
  private readonly holds = new Float64Array(HOLD_RING);
  private holdCount = 0;

  private constructor(options: LegacyOptions) {
    this.options = options;
    this.server = createServer({ keepAliveTimeout: 60_000 }, (request, response) => this.handle(request, response));
  }

  static async start(options: Partial<LegacyOptions> & { port?: number; host?: string } = {}): Promise<LegacyDownstream> {
    const { port = 0, host = '127.0.0.1', ...rest } = options;
    const downstream = new LegacyDownstream({ ...DEFAULTS, ...rest });
    await new Promise<void>((resolve) => downstream.server.listen(port, host, resolve));
    return downstream;
  }

  get url(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/batch`;
  }

  set(options: Partial<LegacyOptions>): void {
    Object.assign(this.options, options);
  }

  /** Forgets what was received (counts, records, high-water marks). */
  reset(): void {
    this.received.length = 0;
    this.batches = 0;
    this.items = 0;
    this.sizes.length = 0;
    this.busyMs = 0;
    this.maxInflight = 0;
    this.maxInflightByShard.clear();
    this.resetHolds();
  }

  /** Forgets the hold times (GET /stats?reset=1). */
  resetHolds(): void {
    this.holdCount = 0;
  }

  /** Count, p50, p99 and max of the hold times recorded since the last reset (what GET /stats answers). */
  holdStats(): HoldStats {
    const n = Math.min(this.holdCount, HOLD_RING);
    if (n === 0) return { batches: this.holdCount, p50: null, p99: null, max: null };
    const sorted = this.holds.slice(0, n).sort();
    const at = (q: number): number => sorted[Math.min(n - 1, Math.ceil(q * n) - 1)]!;
    return { batches: this.holdCount, p50: at(0.5), p99: at(0.99), max: sorted[n - 1]! };
  }

  private hold(since: number): void {
    this.holds[this.holdCount % HOLD_RING] = performance.now() - since;
    this.holdCount++;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    if (request.method !== 'POST') {
      if (request.method === 'GET' && (request.url === '/stats' || request.url?.startsWith('/stats?') === true)) {
        const stats = this.holdStats();
        if (new URLSearchParams(request.url.slice('/stats'.length)).get('reset') === '1') this.resetHolds();
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats));
        return;
      }
      response.writeHead(405).end();
      return;
    }
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => this.answer(request, response, Buffer.concat(chunks), performance.now()));
  }

  /** `arrived`: performance.now() when the body's last byte came; the hold is recorded once the answer is written. */
  private answer(request: IncomingMessage, response: ServerResponse, body: Buffer, arrived: number): void {
    let items: unknown[];
    try {
      items = JSON.parse(body.toString('utf8')) as unknown[];
      if (!Array.isArray(items)) throw new Error('not an array');
    } catch {
      response.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"body must be a JSON array"}');
      this.hold(arrived);
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
    const { latencyMs, jitterMs, failureRate, spikeRate, spikeMs, faultShard } = this.options;
    const behaviour = faultShard === null || faultShard === shard ? this.options.behaviour : 'ok';
    if (behaviour === 'hang') {
      response.on('close', () => this.track(shard, -1));
      return;
    }
    const spike = spikeRate > 0 && Math.random() < spikeRate ? spikeMs : 0;
    const delay = latencyMs + spike + (jitterMs > 0 ? Math.random() * jitterMs : 0);
    setTimeout(() => {
      this.track(shard, -1);
      this.busyMs += delay;
      if (behaviour === 'reset') {
        request.socket.destroy();
        return;
      }
      if (
        behaviour === 'status-500' ||
        (failureRate > 0 && Math.random() < failureRate) ||
        (this.options.poisonField !== null && items.some((item) => field(item, this.options.poisonField!)))
      ) {
        response.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"legacy failure"}');
        this.hold(arrived);
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
          this.hold(arrived);
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
      this.hold(arrived);
    }, delay);
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
  });
  process.stdout.write(`legacy downstream listening on ${downstream.url}\n`);
  const stop = () => void downstream.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
