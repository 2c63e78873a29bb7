/**
 * A real nginx (deploy/nginx/sidecar.conf) on loopback in front of three real
 * sidecar replicas and the simulated downstream:
 * (a) the same x-shard-key always lands on the same replica and shard;
 * (b) under steady load, the replicas are restarted one at a time (SIGTERM,
 *     exit 0, start again) and every request is answered 200 with its own
 *     result — anything else counts as lost.
 * Run by `npm run test:deploy` (scripts/ensure-nginx.sh installs nginx first).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shardForKey } from '../../src/actors/routing.ts';
import { LegacyDownstream } from '../../sim/legacy-downstream.ts';
import { startSidecar, type SidecarProcess } from '../../sim/sidecar-process.ts';
import { post, type Answer } from '../support/http.ts';

const SHARD_COUNT = 4;
const NGINX_CONF = readFileSync(new URL('../../deploy/nginx/sidecar.conf', import.meta.url), 'utf8');
/** How long nginx skips a replica after a failure (`fail_timeout` in deploy/nginx/sidecar.conf). */
const FAIL_TIMEOUT_MS = Number(/fail_timeout=(\d+)s/.exec(NGINX_CONF)?.[1] ?? Number.NaN) * 1000;
const NGINX = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** deploy/nginx/sidecar.conf with its server lines pointed at local replicas, in a minimal nginx.conf. */
function renderNginx(dir: string, listen: number, replicas: number[]): string {
  let site = NGINX_CONF;
  let index = 0;
  site = site.replace(/server sidecar-\d+:8080/g, () => `server 127.0.0.1:${replicas[index++]}`);
  expect(index).toBe(replicas.length);
  site = site.replace('listen 8080;', `listen 127.0.0.1:${listen};`);
  writeFileSync(join(dir, 'sidecar.conf'), site);
  for (const temp of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, temp), { recursive: true });
  const user = process.getuid?.() === 0 ? 'user root;' : '';
  const main = `${user}
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 2048; }
http {
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/sidecar.conf;
}
`;
  const path = join(dir, 'nginx.conf');
  writeFileSync(path, main);
  return path;
}

describe('behind nginx with key affinity', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sidecar-nginx-'));
  let downstream: LegacyDownstream;
  let nginx: ChildProcess;
  let url: string;
  let ports: number[];
  const replicas: SidecarProcess[] = [];

  const startReplica = (port: number) =>
    startSidecar({
      DOWNSTREAM_URL: downstream.url,
      PORT: String(port),
      SHARD_COUNT: String(SHARD_COUNT),
      BATCH_MAX_WAIT_MS: '10',
      SHUTDOWN_DELAY_MS: '200',
      SHUTDOWN_TIMEOUT_MS: '10000',
    });

  beforeAll(async () => {
    downstream = await LegacyDownstream.start({ latencyMs: 20, jitterMs: 10 });
    ports = [await freePort(), await freePort(), await freePort()];
    for (const port of ports) replicas.push(await startReplica(port));
    const listen = await freePort();
    nginx = spawn(NGINX, ['-c', renderNginx(dir, listen, ports), '-p', dir], { stdio: 'inherit' });
    url = `http://127.0.0.1:${listen}`;
    for (let attempt = 0; ; attempt++) {
      try {
        if ((await post(url, { probe: true })).status === 200) break;
      } catch (error) {
        if (attempt > 100) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  afterAll(async () => {
    nginx?.kill('SIGQUIT');
    await Promise.all(replicas.map((replica) => replica.stop()));
    await downstream?.close();
  });

  /** The replica that answered: batch ids start with a per-process random prefix. */
  const replicaOf = (answer: Answer) => String(answer.headers['x-batch-id']).split('-')[0];

  it('sends the same x-shard-key to the same replica and shard every time', async () => {
    const seen = new Map<string, Set<string>>();
    for (let round = 0; round < 4; round++) {
      const answers = await Promise.all(
        Array.from({ length: 40 }, (_, i) => post(url, { i, round }, { 'x-shard-key': `tenant-${i}` })),
      );
      answers.forEach((answer, i) => {
        expect(answer.status).toBe(200);
        expect(answer.headers['x-shard']).toBe(String(shardForKey(`tenant-${i}`, SHARD_COUNT)));
        const replicasOfKey = seen.get(`tenant-${i}`) ?? new Set<string>();
        replicasOfKey.add(replicaOf(answer));
        seen.set(`tenant-${i}`, replicasOfKey);
      });
    }
    for (const replicasOfKey of seen.values()) expect(replicasOfKey.size).toBe(1);
    // The keys are spread over the replicas, not all on one.
    expect(new Set([...seen.values()].map((set) => [...set][0])).size).toBeGreaterThan(1);
  });

  it('loses nothing while the replicas restart one at a time under steady load', async () => {
    let sent = 0;
    let correct = 0;
    const other: string[] = [];
    let running = true;
    const worker = async (w: number) => {
      for (let n = 0; running; n++) {
        const id = `${w}-${n}`;
        sent++;
        try {
          const answer = await post(url, { id }, { 'x-shard-key': `key-${n % 50}` });
          const body = answer.body as { echo?: { id?: string } };
          if (answer.status === 200 && body.echo?.id === id) correct++;
          else other.push(`${answer.status} ${JSON.stringify(answer.body)}`);
        } catch (error) {
          other.push(String(error));
        }
      }
    };
    const workers = Array.from({ length: 24 }, (_, w) => worker(w));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const exits: (number | null)[] = [];
    for (let i = 0; i < replicas.length; i++) {
      replicas[i].signal('SIGTERM');
      exits.push((await replicas[i].exited).code);
      replicas[i] = await startReplica(ports[i]);
      // The next replica goes down only once this one is back in rotation:
      // nginx skips a replica for fail_timeout after its last failure, and
      // with two replicas skipped a single failure of the third would leave
      // no live upstream (502 for every request until fail_timeout passes).
      await new Promise((resolve) => setTimeout(resolve, FAIL_TIMEOUT_MS + 500));
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    running = false;
    await Promise.all(workers);

    console.log(`rolling restart: sent ${sent}, answered 200 with their own result ${correct}, anything else ${other.length}`);
    expect(exits).toEqual([0, 0, 0]);
    expect(other).toEqual([]);
    expect(correct).toBe(sent);
    expect(sent).toBeGreaterThan(500);
  });
});
