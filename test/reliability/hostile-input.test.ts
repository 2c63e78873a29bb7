/**
 * Hostile ingress against the real process: each attack gets the right 4xx (or
 * its connection closed), memory stays bounded, and ordinary requests keep
 * being served meanwhile. The attacks that need minutes (slowloris, bodies that
 * never end) are in soak.test.ts.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { LegacyDownstream } from '../../sim/legacy-downstream.ts';
import { startSidecar, type SidecarProcess } from '../../sim/sidecar-process.ts';
import { post } from '../support/http.ts';
import { parsePrometheus, valueOf } from '../../sim/prometheus.ts';

/** Writes raw bytes on a new connection and returns what came back before it closed. */
function raw(url: string, bytes: Buffer | string, waitMs = 2000): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    let received = '';
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    socket.on('close', () => resolve(received));
    socket.on('error', () => resolve(received));
    socket.write(bytes);
    setTimeout(() => socket.destroy(), waitMs).unref();
  });
}

const statusOf = (response: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);

describe('hostile ingress', () => {
  let downstream: LegacyDownstream;
  let sidecar: SidecarProcess;
  let neighbours: Promise<number[]>;
  let stopNeighbours = false;

  beforeAll(async () => {
    downstream = await LegacyDownstream.start({ latencyMs: 2, record: true });
    // 2,000 connections opened at once, while every neighbour must get a 200.
    sidecar = await startSidecar({ DOWNSTREAM_URL: downstream.url, BATCH_MAX_WAIT_MS: '2' });
    // Ordinary traffic all along: every one of these must succeed.
    neighbours = (async () => {
      const statuses: number[] = [];
      for (let i = 0; !stopNeighbours; i++) {
        const answer = await post(sidecar.url, { key: `n${i % 5}`, i });
        statuses.push(answer.status === 200 && (answer.body as { echo: { i: number } }).echo.i === i ? 200 : answer.status);
      }
      return statuses;
    })();
  });

  afterAll(async () => {
    stopNeighbours = true;
    const statuses = await neighbours;
    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.filter((status) => status !== 200)).toEqual([]);
    await sidecar.stop();
    await downstream.close();
  });

  it('answers 400 to random bytes instead of HTTP, many times over', async () => {
    for (let i = 0; i < 50; i++) {
      const garbage = Buffer.from(Array.from({ length: 64 + i * 7 }, () => Math.floor(Math.random() * 256)));
      const response = await raw(sidecar.url, garbage, 1000);
      expect([0, 400]).toContain(statusOf(response));
    }
  });

  it('answers 400 to JSON bodies of random bytes and to truncated JSON', async () => {
    for (let i = 0; i < 100; i++) {
      const body = Buffer.from(Array.from({ length: 1 + (i % 40) }, () => Math.floor(Math.random() * 256)));
      body[0] = 0x7b; // "{": never valid on its own
      // Nor with a trailing ",": random bytes could otherwise make "{}" (seen, about 1 run in 80).
      if (body.length > 1) body[body.length - 1] = 0x2c;
      const response = await request(`${sidecar.url}/process`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      expect(response.statusCode).toBe(400);
      await response.body.dump();
    }
  });

  it('refuses JSON nested deeper than 128 levels (400), and takes 128', async () => {
    const deep = '['.repeat(20_000) + ']'.repeat(20_000);
    const refused = await post(sidecar.url, deep, {}, true);
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ code: 'SIDECAR_ERR_JSON_TOO_DEEP' });
    const deepest = `{"a":"[[[[","b":${'['.repeat(127)}${']'.repeat(127)}}`;
    const taken = await post(sidecar.url, deepest, {}, true);
    expect(taken.status).toBe(200);
    expect(taken.body).toEqual({ echo: JSON.parse(deepest) });
  });

  it('routes huge numbers, unicode and empty keys, and forwards them as sent', async () => {
    for (const raw of ['{"key":1e400}', '{"key":123456789012345678901234567890}', '{"key":""}', '{"key":"🔑ключ鍵"}', '{"key":-0}']) {
      const answer = await post(sidecar.url, raw, {}, true);
      expect(answer.status).toBe(200);
      // The downstream got the caller's bytes; its echo went through its own JSON round trip.
      const batch = downstream.received.find((received) => received.batchId === answer.headers['x-batch-id']);
      expect(batch?.body).toContain(raw);
      expect(answer.body).toEqual({ echo: JSON.parse(JSON.stringify(JSON.parse(raw))) });
    }
    const emptyHeader = await post(sidecar.url, { id: 1 }, { 'x-shard-key': '' });
    expect(emptyHeader.status).toBe(200);
  });

  it('answers 431 to headers over the size limit', async () => {
    const response = await raw(
      sidecar.url,
      `POST /process HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-junk: ${'a'.repeat(64 * 1024)}\r\ncontent-length: 2\r\n\r\n{}`,
    );
    expect(statusOf(response)).toBe(431);
  });

  it('answers 415 or 400 to conflicting content-type headers', async () => {
    const twoHeaders = await raw(
      sidecar.url,
      'POST /process HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}',
    );
    expect([400, 415]).toContain(statusOf(twoHeaders));
    const listed = await raw(
      sidecar.url,
      'POST /process HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain, application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}',
    );
    expect([400, 415]).toContain(statusOf(listed));
  });

  it('keeps serving with 2,000 idle keep-alive connections open, and memory stays bounded', async () => {
    const rss = async () =>
      valueOf(parsePrometheus(await (await request(`${sidecar.url}/metrics`)).body.text()), 'process_resident_memory_bytes')!;
    const before = await rss();
    const { hostname, port } = new URL(sidecar.url);
    const sockets: Socket[] = [];
    await Promise.all(
      Array.from(
        { length: 2000 },
        () =>
          new Promise<void>((resolve) => {
            const socket = connect(Number(port), hostname, () => {
              socket.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n');
            });
            socket.once('data', () => resolve());
            socket.on('error', () => resolve());
            sockets.push(socket);
          }),
      ),
    );
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => post(sidecar.url, { i })));
    expect(answers.every((answer) => answer.status === 200)).toBe(true);
    const during = await rss();
    for (const socket of sockets) socket.destroy();
    // An idle connection costs a few kilobytes; 2,000 of them well under 100 MiB.
    expect(during - before).toBeLessThan(100 * 1024 * 1024);
  });
});
