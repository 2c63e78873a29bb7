/**
 * Entry point: load configuration, start the batcher (supervisor and shards),
 * start the ingress (the Fastify app on this thread, or INGRESS_THREADS
 * ingress threads: ADR 0017), listen, and wire the signals. Exit codes: 0
 * clean shutdown, 1 shutdown timeout or failure, 2 bad configuration.
 */
import { pino } from 'pino';
import { Batcher } from './actors/batcher.ts';
import type { ItemSink } from './actors/batch.ts';
import { ConfigError, helpText, loadConfig, type Config } from './config.ts';
import { DownstreamClient } from './downstream/client.ts';
import { Admission } from './http/admission.ts';
import { buildApp } from './http/app.ts';
import { createAnswers, createReplySink } from './http/reply-sink.ts';
import { IngressThreads } from './ingress/threads.ts';
import { Lifecycle } from './lifecycle.ts';
import { appIngress, createShutdown, type Ingress } from './shutdown.ts';
import { Telemetry } from './telemetry/telemetry.ts';

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(helpText());
  process.exit(0);
}

let config: Config;
try {
  config = loadConfig(process.env);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`configuration error: ${error.message}\nRun with --help for every variable.\n`);
  process.exit(2);
}

const log = pino({ level: config.logLevel });
// Telemetry first: the SDK reads the OTEL_* variables itself.
const telemetry = await Telemetry.start({ env: process.env, log, batchMaxSize: config.batchMaxSize });
const lifecycle = new Lifecycle();
const downstream = new DownstreamClient(config);
// With ingress threads, this thread only batches: each ingress thread has its own admission control.
const threads =
  config.ingressThreads > 1
    ? new IngressThreads({
        count: config.ingressThreads,
        log,
        lifecycle,
        metrics: telemetry.metrics,
        onFatal: () => shutdown.onFatal(),
      })
    : null;
const admission = new Admission({
  header: config.requestStartHeader,
  requestTimeoutMs: config.requestTimeoutMs,
  maxEdgeWaitMs: config.admissionMaxEdgeWaitMs,
  queueBudgetMs: config.maxQueueWaitMs,
});
telemetry.observeAdmission(admission);
telemetry.observeLifecycle(() => lifecycle.phase);

const sink: ItemSink =
  threads === null ? createReplySink(createAnswers(lifecycle, telemetry.metrics, { serverTiming: config.serverTiming, log, onServed: admission.servedListener })) : threads.sink;
const batcher = new Batcher({
  config,
  downstream,
  sink,
  observer: telemetry,
  onFatal: (error) => {
    log.fatal({ err: error }, 'batcher failed: every held request was answered 500; exiting');
    setTimeout(() => process.exit(1), 500);
  },
  // A line per change of the limit, never per call; at debug, as it can change a few times a second.
  onLimitChange: log.isLevelEnabled('debug') ? (change) => log.debug({ callLimit: change }, 'downstream call limit changed') : undefined,
}).start();
telemetry.observeShards(
  () => batcher.stats(),
  () => batcher.callLimit,
);
let ingress: Ingress;
let listen: () => Promise<number>;
if (threads === null) {
  const app = buildApp({
    config,
    intake: batcher,
    lifecycle,
    metrics: telemetry.metrics,
    tracing: telemetry.tracing,
    exposition: telemetry.metrics,
    log,
    admission,
  });
  ingress = appIngress(app);
  listen = async () => {
    await app.listen({ port: config.port, host: config.host });
    const address = app.server.address();
    return typeof address === 'object' && address !== null ? address.port : config.port;
  };
} else {
  threads.attach(batcher);
  ingress = threads;
  listen = () => threads.listen(config.port, config.host);
}

const shutdown = createShutdown({
  config,
  log,
  ingress,
  batcher,
  downstream,
  lifecycle,
  flush: () => telemetry.flush(),
  refused: () => (threads === null ? telemetry.metrics.requestCount('draining') : threads.requestCount('draining')),
  exit: (code) => process.exit(code),
});
process.on('SIGTERM', shutdown.onSignal);
process.on('SIGINT', shutdown.onSignal);
process.on('unhandledRejection', (reason) => log.error({ err: reason }, 'unhandled rejection'));

let port: number;
try {
  port = await listen();
} catch (error) {
  log.fatal({ err: error }, 'cannot listen');
  process.exit(1);
}
// A signal may have come while the listener was starting: then stay not-ready.
if (lifecycle.phase === 'starting') lifecycle.phase = 'ready';
log.info({ port, config: { ...config, downstreamUrl: config.downstreamUrl.href } }, 'sidecar ready');
