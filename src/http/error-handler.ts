/**
 * The one place errors become HTTP responses, in Fastify's error shape
 * `{ statusCode, code, error, message }`. Codes and statuses come from
 * src/errors.ts (ours) and Fastify's FST_ERR_* (body parsing); docs/errors.md
 * lists them all.
 */
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Lifecycle } from '../lifecycle.ts';
import type { SidecarError } from '../errors.ts';
import { outcomeOf, type Metrics } from '../telemetry/metrics.ts';
import { retryAfterValue } from './retry-after.ts';

type ErrorHandler = (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => void;

/**
 * The error handler of every route, and the /process route's own, which also
 * counts the outcome in sidecar_requests_total. Scoping the count to the
 * route, rather than testing `request.routeOptions.url` in one handler (a
 * getter that builds an object per call), keeps the shedding path lean under
 * overload.
 */
export function errorHandlers(lifecycle: Lifecycle, metrics: Metrics, log: Pick<Logger, 'error'>): { readonly any: ErrorHandler; readonly process: ErrorHandler } {
  const answer = (error: FastifyError, request: FastifyRequest, reply: FastifyReply, count: boolean): void => {
    const statusCode = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500;
    const code = error.code ?? 'SIDECAR_ERR_INTERNAL';
    if (count) metrics.request(outcomeOf(code, statusCode));
    // The shard's own estimate: waiting items ÷ its recent drain rate (ADR 0015).
    if (code === 'SIDECAR_ERR_QUEUE_FULL' || code === 'SIDECAR_ERR_QUEUE_WAIT') reply.header('retry-after', retryAfterValue((error as Partial<SidecarError>).retryAfterSeconds));
    if (code === 'SIDECAR_ERR_DRAINING' || lifecycle.isClosing) reply.header('connection', 'close');
    if (statusCode === 500) log.error({ err: error, method: request.method, url: request.url }, 'request failed');
    reply.code(statusCode).send({
      statusCode,
      code,
      error: STATUS_CODES[statusCode] ?? 'Error',
      message: statusCode === 500 && !code.startsWith('SIDECAR_') ? 'Internal Server Error' : error.message,
    });
  };
  return {
    any: (error, request, reply) => answer(error, request, reply, false),
    process: (error, request, reply) => answer(error, request, reply, true),
  };
}
