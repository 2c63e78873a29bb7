/**
 * The one place errors become HTTP responses, in Fastify's error shape
 * `{ statusCode, code, error, message }`. Codes and statuses come from
 * src/errors.ts (ours) and Fastify's FST_ERR_* (body parsing); docs/errors.md
 * lists them all.
 */
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance } from 'fastify';
import type { Lifecycle } from '../lifecycle.ts';
import { outcomeOf, type Metrics } from '../telemetry/metrics.ts';
import { PROCESS_URL } from './process-route.ts';

/** Seconds a shed caller should wait: a batch window is milliseconds, so one second is plenty. */
const RETRY_AFTER_SECONDS = '1';

export function registerErrorHandler(app: FastifyInstance, lifecycle: Lifecycle, metrics: Metrics): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const statusCode = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500;
    const code = error.code ?? 'SIDECAR_ERR_INTERNAL';
    if (request.routeOptions.url === PROCESS_URL) metrics.request(outcomeOf(code, statusCode));
    if (code === 'SIDECAR_ERR_QUEUE_FULL') reply.header('retry-after', RETRY_AFTER_SECONDS);
    if (code === 'SIDECAR_ERR_DRAINING' || lifecycle.isClosing) reply.header('connection', 'close');
    if (statusCode === 500) request.log.error({ err: error }, 'request failed');
    reply.code(statusCode).send({
      statusCode,
      code,
      error: STATUS_CODES[statusCode] ?? 'Error',
      message: statusCode === 500 && !code.startsWith('SIDECAR_') ? 'Internal Server Error' : error.message,
    });
  });
}
