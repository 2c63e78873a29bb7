import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, VARIABLES } from '../src/config.ts';
import { runMain } from '../sim/sidecar-process.ts';

const URL_ONLY = { DOWNSTREAM_URL: 'http://127.0.0.1:9999/batch' };

describe('configuration', () => {
  it('applies the SPEC defaults and freezes the result', () => {
    const config = loadConfig(URL_ONLY);
    expect(config).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      shardCount: 4,
      batchMaxSize: 100,
      batchMaxWaitMs: 10,
      batchWindowMode: 'fixed',
      batchMinWaitMs: 1,
      batchMaxBytes: 1048576,
      maxInflightBatches: 8,
      maxQueuePerShard: 10000,
      maxBodyBytes: 65536,
      requestTimeoutMs: 10000,
      downstreamTimeoutMs: 5000,
      downstreamRetries: 0,
      shutdownDelayMs: 0,
      shutdownTimeoutMs: 25000,
      shardKeyField: 'key',
      logLevel: 'info',
      serverTiming: true,
      itemErrorField: null,
      isolateFailedBatches: false,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it.each([
    ['SHARD_COUNT', '0'],
    ['SHARD_COUNT', 'four'],
    ['BATCH_MAX_SIZE', '-1'],
    ['BATCH_MAX_WAIT_MS', '1.5'],
    ['PORT', '70000'],
    ['MAX_INFLIGHT_BATCHES', '0'],
    ['LOG_LEVEL', 'loud'],
    ['DOWNSTREAM_URL', 'ftp://example/batch'],
    ['DOWNSTREAM_URL', 'not a url'],
    ['BATCH_MAX_BYTES', '100'],
    ['DOWNSTREAM_RETRIES', '99'],
    ['SERVER_TIMING', 'maybe'],
    ['ISOLATE_FAILED_BATCHES', 'yes'],
    ['BATCH_WINDOW_MODE', 'smart'],
    ['BATCH_MIN_WAIT_MS', '-1'],
    ['BATCH_MIN_WAIT_MS', '11'],
    ['ADMISSION_MAX_EDGE_WAIT_MS', '-5'],
    ['REQUEST_START_HEADER', 'x request start'],
    ['DOWNSTREAM_CONCURRENCY', 'elastic'],
    ['MAX_QUEUE_WAIT_MS', '0'],
    ['INGRESS_THREADS', '0'],
    ['INGRESS_THREADS', '2.5'],
    ['INGRESS_THREADS', '65'],
  ])('rejects %s=%s naming the variable', (name, value) => {
    expect(() => loadConfig({ ...URL_ONLY, [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ ...URL_ONLY, [name]: value })).toThrow(new RegExp(`^${name}=`));
  });

  it('reads the admission-control knobs and the edge-stamp header (empty: stamps ignored)', () => {
    expect(loadConfig(URL_ONLY)).toMatchObject({ admissionMaxEdgeWaitMs: 500, requestStartHeader: 'x-request-start' });
    expect(loadConfig({ ...URL_ONLY, ADMISSION_MAX_EDGE_WAIT_MS: '0', REQUEST_START_HEADER: 'X-Queue-Start' })).toMatchObject({
      admissionMaxEdgeWaitMs: 0,
      requestStartHeader: 'x-queue-start',
    });
    expect(loadConfig({ ...URL_ONLY, REQUEST_START_HEADER: '' }).requestStartHeader).toBeNull();
  });

  it('reads the shield: DOWNSTREAM_CONCURRENCY (default adaptive) and MAX_QUEUE_WAIT_MS (default 1000)', () => {
    expect(loadConfig(URL_ONLY)).toMatchObject({ downstreamConcurrency: 'adaptive', maxQueueWaitMs: 1000 });
    expect(loadConfig({ ...URL_ONLY, DOWNSTREAM_CONCURRENCY: 'fixed', MAX_QUEUE_WAIT_MS: '250' })).toMatchObject({
      downstreamConcurrency: 'fixed',
      maxQueueWaitMs: 250,
    });
  });

  it('reads INGRESS_THREADS (default 1: HTTP on the batcher thread)', () => {
    expect(loadConfig(URL_ONLY).ingressThreads).toBe(1);
    expect(loadConfig({ ...URL_ONLY, INGRESS_THREADS: '4' }).ingressThreads).toBe(4);
  });

  it('reads SERVER_TIMING, ITEM_ERROR_FIELD and ISOLATE_FAILED_BATCHES', () => {
    expect(loadConfig({ ...URL_ONLY, SERVER_TIMING: 'false', ITEM_ERROR_FIELD: 'error', ISOLATE_FAILED_BATCHES: 'TRUE' })).toMatchObject({
      serverTiming: false,
      itemErrorField: 'error',
      isolateFailedBatches: true,
    });
  });

  it.each([
    ['SERVER_TIMING', 'maybe'],
    ['ISOLATE_FAILED_BATCHES', 'yes'],
  ])('exits 2 naming %s when it is %s', async (name, value) => {
    const result = await runMain({ ...URL_ONLY, [name]: value });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(name);
  });

  it('reads the adaptive window bounds, BATCH_MIN_WAIT_MS at most BATCH_MAX_WAIT_MS', () => {
    const config = loadConfig({ ...URL_ONLY, BATCH_WINDOW_MODE: 'adaptive', BATCH_MIN_WAIT_MS: '0', BATCH_MAX_WAIT_MS: '20' });
    expect(config).toMatchObject({ batchWindowMode: 'adaptive', batchMinWaitMs: 0, batchMaxWaitMs: 20 });
    expect(loadConfig({ ...URL_ONLY, BATCH_MAX_WAIT_MS: '0' }).batchMinWaitMs).toBe(0);
    expect(() => loadConfig({ ...URL_ONLY, BATCH_MIN_WAIT_MS: '5', BATCH_MAX_WAIT_MS: '4' })).toThrow(/^BATCH_MIN_WAIT_MS=.*BATCH_MAX_WAIT_MS/);
  });

  it('exits 2 naming BATCH_WINDOW_MODE when it is neither fixed nor adaptive', async () => {
    const result = await runMain({ ...URL_ONLY, BATCH_WINDOW_MODE: 'auto' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('BATCH_WINDOW_MODE');
  });

  it('requires DOWNSTREAM_URL', () => {
    expect(() => loadConfig({})).toThrow(/DOWNSTREAM_URL/);
  });

  it('exits 2 with a message naming the variable on bad configuration', async () => {
    const result = await runMain({ ...URL_ONLY, SHARD_COUNT: 'many' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('SHARD_COUNT');
  });

  it('prints every variable with --help and exits 0 without any variable set', async () => {
    const result = await runMain({}, ['--help']);
    expect(result.code).toBe(0);
    for (const variable of VARIABLES) expect(result.stdout).toContain(variable.name);
  });
});
