/**
 * Builds the Fastify app apart from `listen()`, so tests can use it with
 * inject() and the entry point owns the listener and the signals.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Batcher } from '../actors/batcher.ts';
import type { Config } from '../config.ts';
import type { Lifecycle } from '../lifecycle.ts';
import { registerRequestSpans } from '../telemetry/request-spans.ts';
import type { Telemetry } from '../telemetry/telemetry.ts';
import { errorHandlers } from './error-handler.ts';
import { registerJsonBody } from './json-body.ts';
import { registerMetricsRoute } from './metrics-route.ts';
import { registerProbes } from './probes.ts';
import { PROCESS_URL, registerProcessRoute } from './process-route.ts';

export interface AppOptions {
  readonly config: Config;
  readonly batcher: Batcher;
  readonly lifecycle: Lifecycle;
  readonly telemetry: Telemetry;
  readonly log: Logger;
}

export function buildApp({ config, batcher, lifecycle, telemetry, log }: AppOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    bodyLimit: config.maxBodyBytes,
    // No log line per request at info (SPEC §7).
    logController: new LogController({ disableRequestLogging: true }),
    // Draining is answered by our own handler, with our error code and
    // `connection: close`, in the Fastify error shape (src/http/error-handler.ts).
    return503OnClosing: false,
    // Longer than the usual load-balancer idle timeout (60 s), so the balancer
    // closes idle connections first and never sends on one we are closing.
    keepAliveTimeout: 65_000,
    // A client gets 10 s to send its headers and 15 s for the whole request
    // (408 after that): slowloris senders and bodies that never end are cut
    // off instead of holding a socket and a parser for ever. Node's defaults
    // (60 s, 300 s) and Fastify's (no request timeout) are made for uploads,
    // and Node checks them only every 30 s unless told otherwise.
    http: { headersTimeout: 10_000, connectionsCheckingInterval: 1_000 },
    requestTimeout: 15_000,
  });
  const errors = errorHandlers(lifecycle, telemetry.metrics);
  app.setErrorHandler(errors.any);
  registerJsonBody(app);
  registerRequestSpans(app, telemetry.tracing, PROCESS_URL);
  registerProbes(app, lifecycle);
  registerMetricsRoute(app, telemetry.metrics);
  registerProcessRoute(app, { config, batcher, lifecycle, errorHandler: errors.process });
  return app;
}
