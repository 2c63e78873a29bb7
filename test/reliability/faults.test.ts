/**
 * Downstream faults injected into the simulated downstream while the real
 * sidecar serves: every request is answered (200 with its own result, or the
 * fault's 502 / 504), the pool recovers, the gauges return to 0, and nothing
 * goes unhandled in the process.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { LegacyDownstream, type LegacyOptions } from '../../sim/legacy-downstream.ts';
import { startSidecar, type SidecarProcess } from '../../sim/sidecar-process.ts';
import { post, type Answer } from '../support/http.ts';
import { parsePrometheus, sumOf } from '../../sim/prometheus.ts';

const HEALTHY: Partial<LegacyOptions> = { behaviour: 'ok', failureRate: 0, spikeRate: 0, latencyMs: 5 };

describe('downstream faults', () => {
  let downstream: LegacyDownstream;
  let sidecar: SidecarProcess;
  let port: number;

  beforeAll(async () => {
    downstream = await LegacyDownstream.start(HEALTHY);
    port = Number(new URL(downstream.url).port);
    sidecar = await startSidecar({
      DOWNSTREAM_URL: downstream.url,
      SHARD_COUNT: '4',
      BATCH_MAX_SIZE: '20',
      BATCH_MAX_WAIT_MS: '5',
      DOWNSTREAM_TIMEOUT_MS: '1000',
    });
  });
  afterAll(async () => {
    await sidecar.stop();
    await downstream.close();
  });
  beforeEach(() => downstream.set(HEALTHY));

  /** Sends `count` requests at once; every answer must be its own result or one of `allowed`. */
  async function burst(count: number, allowed: number[]): Promise<Map<number, number>> {
    const tag = Math.random().toString(36).slice(2);
    const answers = await Promise.all(
      Array.from({ length: count }, (_, i) => post(sidecar.url, { key: `k${i % 17}`, id: `${tag}-${i}` })),
    );
    const byStatus = new Map<number, number>();
    answers.forEach((answer: Answer, i) => {
      byStatus.set(answer.status, (byStatus.get(answer.status) ?? 0) + 1);
      if (answer.status === 200) expect(answer.body).toEqual({ echo: { key: `k${i % 17}`, id: `${tag}-${i}` } });
      else expect(allowed).toContain(answer.status);
    });
    return byStatus;
  }

  async function expectIdleGauges() {
    // Calls still in flight may need a moment to be settled after the last answer.
    for (let attempt = 0; ; attempt++) {
      const samples = parsePrometheus(await (await request(`${sidecar.url}/metrics`)).body.text());
      const held = sumOf(samples, 'sidecar_inflight_batches') + sumOf(samples, 'sidecar_queue_depth');
      if (held === 0) return;
      if (attempt > 50) expect(held).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async function expectRecovered() {
    downstream.set(HEALTHY);
    // The shards refuse by the time their last calls took (ADR 0020): an idle
    // shard forgets the fault's slow calls after a second without any.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const byStatus = await burst(100, []);
    expect(byStatus.get(200)).toBe(100);
    await expectIdleGauges();
  }

  it.each([
    ['random 500s', { failureRate: 0.3 }, [502]],
    ['wrong-length answers', { behaviour: 'wrong-length' }, [502]],
    ['truncated JSON', { behaviour: 'truncated' }, [502]],
    ['connections reset mid-answer', { behaviour: 'reset-mid-body' }, [502]],
    ['latency spikes past DOWNSTREAM_TIMEOUT_MS', { spikeRate: 0.3, spikeMs: 1500 }, [504]],
  ] as [string, Partial<LegacyOptions>, number[]][])('answers everyone through %s, then recovers', async (_name, fault, allowed) => {
    downstream.set(fault);
    const byStatus = await burst(400, allowed);
    const failed = [...byStatus.entries()].filter(([status]) => status !== 200).reduce((sum, [, n]) => sum + n, 0);
    expect(failed).toBeGreaterThan(0);
    await expectRecovered();
  });

  it('answers 502 while the downstream is gone, and serves again once it is back', async () => {
    await downstream.close();
    const whileGone = await burst(100, [502]);
    expect(whileGone.get(502)).toBe(100);
    downstream = await LegacyDownstream.start({ ...HEALTHY, port });
    await expectRecovered();
  });

  it('logged no unhandled rejection', () => {
    expect(sidecar.logs.filter((entry) => entry.level === 50 || entry.level === 60)).toEqual([]);
    expect(sidecar.child.exitCode).toBeNull();
  });
});
