import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { LegacyDownstream, maxItemsPerSecond, type LegacyOptions } from '../../sim/legacy-downstream.ts';

// Real HTTP against the simulator. Timing bounds are loose: the machine has 2 cores and runs other work.

let downstream: LegacyDownstream | undefined;
afterEach(async () => {
  await downstream?.close();
  downstream = undefined;
});

async function start(options: Partial<LegacyOptions>): Promise<LegacyDownstream> {
  downstream = await LegacyDownstream.start(options);
  return downstream;
}

interface Answer {
  readonly status: number;
  readonly body: unknown;
  /** ms from the call's send to its answer. */
  readonly ms: number;
}

async function call(d: LegacyDownstream, items: unknown[] = [1], signal?: AbortSignal): Promise<Answer> {
  const sent = performance.now();
  const { statusCode, body } = await request(d.url, { method: 'POST', body: JSON.stringify(items), headers: { 'content-type': 'application/json' }, signal });
  return { status: statusCode, body: await body.json(), ms: performance.now() - sent };
}

async function get(d: LegacyDownstream, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const { statusCode, body } = await request(`${new URL(d.url).origin}${path}`);
  return { status: statusCode, body: (await body.json()) as Record<string, unknown> };
}

async function control(d: LegacyDownstream, payload: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const { statusCode, body } = await request(`${new URL(d.url).origin}/control`, { method: 'POST', body: payload, headers: { 'content-type': 'application/json' } });
  return { status: statusCode, body: (await body.json()) as Record<string, unknown> };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` holds (the simulator's state after a request is only visible once its body arrived). */
async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error('condition not met in time');
    await sleep(5);
  }
}

describe('simulated legacy downstream with a pool of workers', () => {
  it('serves at most `workers` calls at once; the others wait in arrival order, about one hold time', async () => {
    const d = await start({ workers: 2, latencyMs: 100 });
    const answers = await Promise.all([1, 2, 3, 4].map((i) => call(d, [i])));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    expect(answers.map((a) => a.body)).toEqual([[{ echo: 1 }], [{ echo: 2 }], [{ echo: 3 }], [{ echo: 4 }]]);
    const ms = answers.map((a) => a.ms).sort((a, b) => a - b);
    expect(ms[1]).toBeLessThan(190); // two served at once
    expect(ms[2]).toBeGreaterThanOrEqual(190); // two waited for a worker
    const stats = d.stats();
    expect(stats.maxBusy).toBe(2);
    expect(stats.batches).toBe(4);
    expect(stats.items).toBe(4);
    expect(stats.queueWait.max).toBeGreaterThanOrEqual(85);
    expect(stats.queueWait.p50).toBeLessThan(stats.queueWait.max!);
  });

  it('charges perItemMs for each item on top of latencyMs', async () => {
    const d = await start({ workers: 1, latencyMs: 20, perItemMs: 10 });
    const { ms } = await call(d, Array.from({ length: 20 }, (_, i) => i));
    expect(ms).toBeGreaterThanOrEqual(215);
  });

  it('answers 503 "legacy queue full" at once when queueLimit calls already wait', async () => {
    const d = await start({ workers: 1, latencyMs: 300, queueLimit: 1 });
    const first = call(d, [1]);
    await until(() => d.busy === 1);
    const second = call(d, [2]);
    await until(() => d.queued === 1);
    const third = await call(d, [3]);
    expect(third.status).toBe(503);
    expect(third.body).toEqual({ error: 'legacy queue full' });
    expect(third.ms).toBeLessThan(250);
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
    expect(d.stats().refused).toBe(1);
    expect(d.batches).toBe(2); // the refused call is not counted as received
  });

  it('keeps a worker busy for a call whose client went away; the next call waits for it', async () => {
    const d = await start({ workers: 1, latencyMs: 300 });
    const abort = new AbortController();
    const gone = call(d, [1], abort.signal).catch((error: unknown) => error);
    await until(() => d.busy === 1);
    abort.abort();
    expect(await gone).toBeInstanceOf(Error);
    const next = await call(d, [2]);
    expect(next.status).toBe(200);
    expect(next.ms).toBeGreaterThanOrEqual(400); // waited for the abandoned call (~300 ms less what had passed), then its own 300 ms
    const stats = d.stats();
    expect(stats.abandoned).toBe(1);
    expect(stats.items).toBe(2);
    expect(stats.queueWait.max).toBeGreaterThanOrEqual(150);
  });

  it('processes a call whose client went away while it waited, and holds its worker for it', async () => {
    const d = await start({ workers: 1, latencyMs: 200 });
    const first = call(d, [1]);
    await until(() => d.busy === 1);
    const abort = new AbortController();
    const gone = call(d, [2], abort.signal).catch((error: unknown) => error);
    await until(() => d.queued === 1);
    abort.abort();
    await gone;
    const third = call(d, [3]);
    expect((await first).status).toBe(200);
    const answer = await third;
    expect(answer.status).toBe(200);
    expect(answer.ms).toBeGreaterThanOrEqual(450); // behind the first's rest and the abandoned one's whole 200 ms
    expect(d.stats().abandoned).toBe(1);
  });

  it('frees the worker of a hanging call when its client goes away', async () => {
    const d = await start({ workers: 1, latencyMs: 10, behaviour: 'hang' });
    const abort = new AbortController();
    const hung = call(d, [1], abort.signal).catch((error: unknown) => error);
    await until(() => d.busy === 1);
    d.set({ behaviour: 'ok' });
    const next = call(d, [2]);
    await until(() => d.queued === 1);
    abort.abort();
    await hung;
    expect((await next).status).toBe(200);
    expect(d.busy).toBe(0);
  });

  it('starts waiting calls at once when set() raises workers', async () => {
    const d = await start({ workers: 1, latencyMs: 400 });
    const started = performance.now();
    const calls = [1, 2, 3].map((i) => call(d, [i]));
    await until(() => d.queued === 2);
    d.set({ workers: 3 });
    expect(d.queued).toBe(0);
    expect(d.busy).toBe(3);
    await Promise.all(calls);
    expect(performance.now() - started).toBeLessThan(1_000); // not 3 × 400 ms one after another
  });

  it('lets running calls finish and starts none until fewer than `workers` run when set() lowers it', async () => {
    const d = await start({ workers: 2, latencyMs: 100, perItemMs: 20 });
    const short = call(d, [1]); // 120 ms
    const long = call(d, Array.from({ length: 10 }, (_, i) => i)); // 300 ms
    await until(() => d.busy === 2);
    d.set({ workers: 1 });
    const third = call(d, [3]);
    await until(() => d.queued === 1);
    expect((await short).status).toBe(200);
    expect(d.queued).toBe(1); // the short one finishing leaves one running: not fewer than 1
    expect((await long).status).toBe(200);
    const answer = await third;
    expect(answer.status).toBe(200);
    expect(answer.ms).toBeGreaterThanOrEqual(360); // behind the long one (~290 ms left) plus its own 120 ms
  });
});

describe('simulated legacy downstream GET /stats and POST /control', () => {
  it('reports throughput, queue wait, refusals and the shape, and resets them with ?reset=1', async () => {
    const d = await start({ workers: 2, latencyMs: 30, perItemMs: 1 });
    await Promise.all([call(d, [1, 2, 3]), call(d, [4, 5]), call(d, [6])]);
    const { status, body } = await get(d, '/stats?reset=1');
    expect(status).toBe(200);
    expect(body).toMatchObject({ batches: 3, items: 6, refused: 0, abandoned: 0, queued: 0, busy: 0, maxBusy: 2, workers: 2, latencyMs: 30, perItemMs: 1, queueLimit: 0 });
    for (const name of ['p50', 'p99', 'max', 'seconds', 'itemsPerSecond', 'callsPerSecond']) expect(body[name]).toBeTypeOf('number');
    expect(body.itemsPerSecond).toBeCloseTo(6 / (body.seconds as number), 3);
    expect(body.callsPerSecond).toBeCloseTo(3 / (body.seconds as number), 3);
    const queueWait = body.queueWait as Record<string, number>;
    expect(queueWait.max).toBeGreaterThanOrEqual(25); // one call waited for a worker
    const after = await get(d, '/stats');
    expect(after.body).toMatchObject({ batches: 0, items: 0, p50: null, p99: null, max: null, queueWait: { p50: null, p99: null, max: null }, refused: 0, maxBusy: 0 });
    expect(after.body.seconds).toBeLessThan(2);
  });

  it('POST /control changes the options of a running simulator and answers them', async () => {
    const d = await start({ workers: 1, latencyMs: 300 });
    const calls = [1, 2].map((i) => call(d, [i]));
    await until(() => d.queued === 1);
    const changed = await control(d, JSON.stringify({ workers: 4, latencyMs: 50, perItemMs: 0.5, queueLimit: 10, jitterMs: 0 }));
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({ workers: 4, latencyMs: 50, perItemMs: 0.5, queueLimit: 10, jitterMs: 0 });
    expect(d.options.workers).toBe(4);
    expect(d.queued).toBe(0); // the waiting call started at once
    await Promise.all(calls);
    expect((await get(d, '/stats')).body).toMatchObject({ workers: 4, latencyMs: 50, perItemMs: 0.5, queueLimit: 10 });
  });

  it('POST /control refuses with 400 what is not an object of known numeric options, and changes nothing', async () => {
    const d = await start({ workers: 1 });
    for (const payload of ['[1]', '"x"', 'null', 'not json', '{"colour":1}', '{"workers":"4"}', '{"workers":-1}', '{"workers":1.5}', '{"failureRate":2}', '{"behaviour":"hang"}']) {
      const { status, body } = await control(d, payload);
      expect(status, payload).toBe(400);
      expect(body.error, payload).toBeTypeOf('string');
    }
    expect(d.options.workers).toBe(1);
    expect(d.options.behaviour).toBe('ok');
  });
});

describe('maxItemsPerSecond', () => {
  it('is workers × batch size / the time a full batch holds a worker, and Infinity with no worker limit', () => {
    expect(maxItemsPerSecond({ workers: 4, latencyMs: 50, perItemMs: 0.5 }, 100)).toBeCloseTo(4000, 6);
    expect(LegacyDownstream.maxItemsPerSecond({ workers: 2, latencyMs: 100, perItemMs: 1 }, 100)).toBeCloseTo(1000, 6);
    expect(maxItemsPerSecond({ workers: 0, latencyMs: 50, perItemMs: 0.5 }, 100)).toBe(Infinity);
  });
});
