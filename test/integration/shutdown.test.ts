/**
 * The shutdown sequence of SPEC §5 with real signals sent to the real process.
 */
import { describe, expect, it } from 'vitest';
import { sidecarPerTest } from '../support/sidecar-per-test.ts';
import { get, post, type Answer } from '../support/http.ts';

const run = sidecarPerTest();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A refusal that queued nothing: 503 draining, or the connection refused once the listener closed. */
function isRefusal(outcome: Answer | Error): boolean {
  if (outcome instanceof Error) return /ECONNREFUSED|ECONNRESET|socket|closed/i.test(`${(outcome as NodeJS.ErrnoException).code} ${outcome.message}`);
  return outcome.status === 503 && (outcome.body as { code?: string }).code === 'SIDECAR_ERR_DRAINING';
}

describe('shutdown', () => {
  it('answers every accepted request with its own result during SIGTERM under a steady stream, then exits 0', async () => {
    const downstream = await run.downstream({ latencyMs: 80, jitterMs: 40 });
    const sidecar = await run.sidecar({
      DOWNSTREAM_URL: downstream.url,
      SHARD_COUNT: '4',
      BATCH_MAX_WAIT_MS: '30',
      SHUTDOWN_DELAY_MS: '400',
    });
    const url = sidecar.url;
    const outcomes: { id: number; outcome: Answer | Error; sentAfterSignal: boolean }[] = [];
    let signalled = false;
    let stop = false;
    let nextId = 0;
    const worker = async () => {
      while (!stop) {
        const id = nextId++;
        const sentAfterSignal = signalled;
        const outcome = await post(url, { key: `k${id % 13}`, id }).catch((error: Error) => error);
        outcomes.push({ id, outcome, sentAfterSignal });
        if (outcome instanceof Error) await sleep(5);
      }
    };
    const workers = Array.from({ length: 40 }, worker);
    await sleep(600);
    sidecar.signal('SIGTERM');
    signalled = true;
    await sleep(100);
    const readiness = await get(`${url}/readyz`);
    expect(readiness.status).toBe(503);
    const exit = await sidecar.exited;
    stop = true;
    await Promise.all(workers);

    expect(exit.code).toBe(0);
    const served = outcomes.filter(({ outcome }) => !(outcome instanceof Error) && outcome.status === 200);
    const refused = outcomes.filter(({ outcome }) => isRefusal(outcome));
    const other = outcomes.filter((entry) => !served.includes(entry) && !refused.includes(entry));
    expect(other.map(({ outcome }) => (outcome instanceof Error ? outcome.message : outcome.status))).toEqual([]);
    for (const { id, outcome } of served) {
      expect((outcome as Answer).body).toEqual({ echo: { key: `k${id % 13}`, id } });
    }
    // Work was still taken during SHUTDOWN_DELAY_MS, and refused after the listener closed.
    expect(served.filter(({ sentAfterSignal }) => sentAfterSignal).length).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);
    expect(downstream.items).toBe(served.length);
    const messages = sidecar.logs.map((entry) => entry.msg);
    expect(messages).toContain('shutdown: complete');
  });

  it('sends partial batches at once on drain instead of waiting for their window', async () => {
    const downstream = await run.downstream({ latencyMs: 5, record: true });
    const sidecar = await run.sidecar({ DOWNSTREAM_URL: downstream.url, SHARD_COUNT: '2', BATCH_MAX_WAIT_MS: '60000' });
    const pending = Promise.all([1, 2, 3].map((id) => post(sidecar.url, { id })));
    await sleep(300);
    expect(downstream.batches).toBe(0);
    sidecar.signal('SIGTERM');
    const answers = await pending;
    expect(answers.map((answer) => answer.body)).toEqual([1, 2, 3].map((id) => ({ echo: { id } })));
    expect((await sidecar.exited).code).toBe(0);
  });

  it('answers what is still pending with 503 once SHUTDOWN_TIMEOUT_MS passes with a hung downstream, and exits 1', async () => {
    const downstream = await run.downstream({ behaviour: 'hang' });
    const sidecar = await run.sidecar({
      DOWNSTREAM_URL: downstream.url,
      BATCH_MAX_WAIT_MS: '5',
      DOWNSTREAM_TIMEOUT_MS: '60000',
      SHUTDOWN_TIMEOUT_MS: '600',
    });
    const pending = Promise.all([1, 2, 3, 4, 5].map((id) => post(sidecar.url, { id })));
    // The call limit starts at one call: the first batch hangs downstream, the
    // others wait in the sidecar for a slot. Both kinds are pending at SIGTERM.
    while (downstream.items < 1) await sleep(20);
    await sleep(100);
    const signalledAt = performance.now();
    sidecar.signal('SIGTERM');
    const answers = await pending;
    for (const answer of answers) {
      expect(answer.status).toBe(503);
      expect(answer.body).toMatchObject({ code: 'SIDECAR_ERR_SHUTDOWN_TIMEOUT' });
    }
    expect(performance.now() - signalledAt).toBeGreaterThanOrEqual(590);
    expect((await sidecar.exited).code).toBe(1);
  });

  it('exits at once on a second signal', async () => {
    const downstream = await run.downstream({ behaviour: 'hang' });
    const sidecar = await run.sidecar({
      DOWNSTREAM_URL: downstream.url,
      BATCH_MAX_WAIT_MS: '5',
      DOWNSTREAM_TIMEOUT_MS: '60000',
      SHUTDOWN_TIMEOUT_MS: '60000',
    });
    const pending = post(sidecar.url, { id: 1 }).catch((error: Error) => error);
    while (downstream.items < 1) await sleep(20);
    sidecar.signal('SIGTERM');
    await sleep(200);
    expect(sidecar.child.exitCode).toBeNull();
    sidecar.signal('SIGINT');
    const exit = await sidecar.exited;
    expect(exit.code).not.toBe(0);
    await pending;
  });
});
