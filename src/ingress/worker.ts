/**
 * An ingress thread (INGRESS_THREADS > 1, ADR 0017): a Fastify server on the
 * shared port (`reusePort`: the kernel spreads connections over the threads)
 * that parses, validates, keys and answers requests exactly as single-thread
 * mode does, with the same app (src/http/app.ts). What it does not have is
 * the batcher: its BatchIntake collects the turn's items into one ItemGroup
 * for the batcher thread, and the answers come back in AnswerGroups.
 *
 * It also has its own admission control (the edge waits of the requests it
 * reads, ADR 0021), its own request metrics (merged into the
 * process's one /metrics by the batcher thread) and, when tracing is on, its
 * own SDK for request spans (the batch spans, on the batcher thread, link to
 * them by context). The lifecycle is the batcher thread's, mirrored here.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parentPort, workerData } from 'node:worker_threads';
import type { FastifyListenOptions, FastifyReply } from 'fastify';
import { pino } from 'pino';
import type { Item } from '../actors/batch.ts';
import type { BatchIntake } from '../actors/batcher.ts';
import { ShardRouter } from '../actors/routing.ts';
import { loadConfig } from '../config.ts';
import { fromWire, SidecarErrors, type SidecarError } from '../errors.ts';
import { Admission } from '../http/admission.ts';
import { buildApp } from '../http/app.ts';
import { createAnswers, sharedTiming } from '../http/reply-sink.ts';
import { Lifecycle } from '../lifecycle.ts';
import { appIngress } from '../shutdown.ts';
import { Metrics } from '../telemetry/metrics.ts';
import { Tracing } from '../telemetry/tracing.ts';
import { Calls, ItemGroupWriter, readAnswers, type Answer, type IngressWorkerData, type ToBatcher, type ToIngress } from './wire.ts';

if (parentPort === null) throw new Error('src/ingress/worker.ts runs as an ingress thread (INGRESS_THREADS > 1), not on its own');
const port = parentPort;
const { index, batcherTimeOrigin } = workerData as IngressWorkerData;
const post = (message: ToBatcher, transfer?: ArrayBuffer[]): void => port.postMessage(message, transfer);

/** The most the span flush may take when the thread stops. */
const FLUSH_TIMEOUT_MS = 3_000;
/** The merged /metrics; the batcher thread asks every ingress thread within this. */
const METRICS_TIMEOUT_MS = 5_000;

// Validated already by the batcher thread, which exits 2 on a bad value before starting any thread.
const config = loadConfig(process.env);
// Written synchronously: pino flushes its buffered writes at exit only on the
// main thread, and a thread's last lines (its stop, its fatal error) must not
// be lost. It logs a handful of lines in its life, none per request.
const log = pino({ level: config.logLevel }, pino.destination({ fd: 1, sync: true })).child({ ingressThread: index });
const tracing = await Tracing.start(process.env);
const lifecycle = new Lifecycle();
const admission = new Admission({
  header: config.requestStartHeader,
  requestTimeoutMs: config.requestTimeoutMs,
  maxEdgeWaitMs: config.admissionMaxEdgeWaitMs,
  queueBudgetMs: config.maxQueueWaitMs,
});
const metrics = new Metrics({ batchMaxSize: config.batchMaxSize, admission: () => admission, processMetrics: false });
const answers = createAnswers(lifecycle, metrics, { serverTiming: config.serverTiming, log, onServed: admission.servedListener });
const calls = new Calls();

/** The replies waiting for their answers, by slot; freed slots are reused. */
const replies: (FastifyReply | null)[] = [];
const freeSlots: number[] = [];

/** Items of this turn, sent to the batcher thread as one group when the turn ends. */
const outgoing = new ItemGroupWriter(batcherTimeOrigin);
let sendScheduled = false;
/** Items this thread handed to the batcher thread (logged when it stops). */
let handedOver = 0;

function sendItems(): void {
  sendScheduled = false;
  if (outgoing.size === 0) return;
  const group = outgoing.take();
  post(group, [group.meta.buffer, group.bodies.buffer]);
}

const router = new ShardRouter(config.shardCount);

/** The batcher as this thread sees it: routing is local, the item goes out with this turn's group. */
const intake: BatchIntake = {
  route: (key) => router.route(key),
  submit(shard: number, item: Item): SidecarError | null {
    // Refused here once closing; the batcher thread refuses what is already on its way (draining).
    if (!lifecycle.acceptsWork) return new SidecarErrors.SIDECAR_ERR_DRAINING();
    const slot = freeSlots.length > 0 ? freeSlots.pop()! : replies.length;
    replies[slot] = item.owner as FastifyReply;
    outgoing.add(slot, shard, item);
    handedOver++;
    if (!sendScheduled) {
      sendScheduled = true;
      setImmediate(sendItems);
    }
    return null;
  },
};

let sharedFor = -1;
let sharedMs = -1;
let shared = '';

function writeAnswer(answer: Answer): void {
  const reply = replies[answer.slot];
  if (reply === null || reply === undefined) return; // cannot happen: each item is answered once
  replies[answer.slot] = null;
  freeSlots.push(answer.slot);
  let timing: string | null = null;
  if (answer.queueMs >= 0 && (answer.ended || answers.serverTiming)) {
    // The part every answer of a batch shares is built once per batch and group.
    if (answer.batchIndex !== sharedFor || answer.downstreamMs !== sharedMs) {
      sharedFor = answer.batchIndex;
      sharedMs = answer.downstreamMs;
      shared = sharedTiming(answer.downstreamMs);
    }
    timing = answers.timing(reply, answer.queueMs, answer.downstreamMs, answer.ended, shared);
  }
  const payload = answer.payload;
  if (typeof payload === 'string') answers.result(reply, payload, answer.batchId!, answer.shard, timing);
  else answers.error(reply, fromWire(payload), answer.batchId, answer.shard, timing);
}

const app = buildApp({
  config,
  intake,
  lifecycle,
  metrics,
  tracing,
  // Asks the batcher thread, which merges every thread's registry with its own.
  exposition: { contentType: metrics.contentType, exposition: () => calls.call<string>(port, 'metrics', METRICS_TIMEOUT_MS) },
  log,
  admission,
});
await app.ready();

const ingress = appIngress(app);

async function close(): Promise<void> {
  // Items taken before the close leave now, ahead of the acknowledgement.
  sendItems();
  const { closed } = await ingress.close();
  post({ type: 'listener-closed' });
  await closed;
  post({ type: 'connections-closed' });
}

async function stop(): Promise<void> {
  log.info({ handedOver }, 'ingress thread stopped');
  if (tracing !== null) {
    await Promise.race([tracing.shutdown(), sleep(FLUSH_TIMEOUT_MS)]).catch((error: unknown) =>
      log.warn({ err: error }, 'ingress thread: span flush failed'),
    );
  }
  process.exit(0); // ends this thread only
}

port.on('message', (message: ToIngress) => {
  switch (message.type) {
    case 'answers':
      sharedFor = -1;
      readAnswers(message, writeAnswer);
      return;
    case 'phase':
      lifecycle.phase = message.phase;
      return;
    case 'listen':
      // Fastify hands its options to Node's server.listen, which takes reusePort
      // (Linux: the kernel spreads new connections over the listening threads);
      // Fastify's types do not list it yet.
      app.listen({ port: message.port, host: message.host, reusePort: true } as FastifyListenOptions).then(
        () => {
          const address = app.server.address();
          post({ type: 'listening', port: typeof address === 'object' && address !== null ? address.port : message.port });
        },
        (error: unknown) => {
          log.fatal({ err: error }, 'ingress thread: cannot listen');
          process.exit(1); // the batcher thread treats the exit as fatal
        },
      );
      return;
    case 'close':
      void close();
      return;
    case 'close-idle':
      ingress.closeIdleConnections();
      return;
    case 'close-all':
      ingress.closeAllConnections();
      return;
    case 'stop':
      void stop();
      return;
    case 'call':
      // The only call to an ingress thread: its registry, for the merged /metrics.
      void metrics.registry.getMetricsAsJSON().then((value) => post({ type: 'reply', id: message.id, value }));
      return;
    case 'reply':
      calls.settle(message);
      return;
  }
});
