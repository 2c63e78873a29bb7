/**
 * Builds the Fastify app apart from `listen()`, so tests can use it with
 * inject() and the entry point owns the listener and the signals.
 */
import { createServer } from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { BatchIntake } from '../actors/batcher.ts';
import type { Config } from '../config.ts';
import type { Lifecycle } from '../lifecycle.ts';
import { registerRequestSpans } from '../telemetry/request-spans.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import type { Tracing } from '../telemetry/tracing.ts';
import type { Admission } from './admission.ts';
import { errorHandlers } from './error-handler.ts';
import { registerJsonBody } from './json-body.ts';
import { registerMetricsRoute, type MetricsExposition } from './metrics-route.ts';
import { registerProbes } from './probes.ts';
import { PROCESS_URL, registerProcessRoute } from './process-route.ts';

declare module 'node:http' {
  interface IncomingMessage {
    /** performance.now() when the server handed the request over, before Fastify and admission control: the start of its time in the sidecar. */
    receivedAt: number;
  }
}

export interface AppOptions {
  readonly config: Config;
  /** The batcher, or an ingress thread's stand-in for it. */
  readonly intake: BatchIntake;
  readonly lifecycle: Lifecycle;
  /** This thread's request metrics (outcomes, overhead). */
  readonly metrics: Metrics;
  /** Request spans; null when tracing is off. */
  readonly tracing: Tracing | null;
  /** What GET /metrics answers: `metrics`, or every thread's merged. */
  readonly exposition: MetricsExposition;
  readonly log: Logger;
  /** Answers stamped POST /process requests that are expired, or too old while a backlog stands, before Fastify sees them. */
  readonly admission: Admission;
}

export function buildApp({ config, intake, lifecycle, metrics, tracing, exposition, log, admission }: AppOptions): FastifyInstance {
  const app = Fastify({
    // Our own server so that admission control (src/http/admission.ts) sits in
    // its request listener, in front of Fastify and before the body is read; the timeouts Fastify would
    // set on a server it made are set here instead.
    serverFactory: (handler) => {
      const guarded = admission.guard(handler, PROCESS_URL, () => lifecycle.acceptsWork, (outcome) => metrics.request(outcome));
      // A client gets 10 s to send its headers and 15 s for the whole request
      // (408 after that): slowloris senders and bodies that never end are cut
      // off instead of holding a socket and a parser for ever. Node's defaults
      // (60 s, 300 s) are made for uploads, and Node checks them only every
      // 30 s unless told otherwise.
      const server = createServer({ headersTimeout: 10_000, requestTimeout: 15_000, connectionsCheckingInterval: 1_000 }, (request, response) => {
        request.receivedAt = performance.now();
        guarded(request, response);
      });
      // Longer than the usual load-balancer idle timeout (60 s), so the balancer
      // closes idle connections first and never sends on one we are closing.
      server.keepAliveTimeout = 65_000;
      return server;
    },
    // No logger for Fastify: with one, every request pays for a child logger
    // (checked for its methods), two listeners on its response and two clock
    // reads, about 7 % of the CPU per request in a closed loop (ADR 0013). The
    // sidecar's own lines, the failed requests included, go to `log`.
    logger: false,
    bodyLimit: config.maxBodyBytes,
    // Draining is answered by our own handler, with our error code and
    // `connection: close`, in the Fastify error shape (src/http/error-handler.ts).
    return503OnClosing: false,
  });
  const errors = errorHandlers(lifecycle, metrics, log);
  app.setErrorHandler(errors.any);
  registerJsonBody(app);
  registerRequestSpans(app, tracing, PROCESS_URL);
  registerProbes(app, lifecycle);
  registerMetricsRoute(app, exposition);
  registerProcessRoute(app, { config, intake, lifecycle, metrics, errorHandler: errors.process });
  return app;
}
