/**
 * Request spans for POST /process, when tracing is on: started as a child of
 * the caller's `traceparent` (if any) and sampled by the configured sampler,
 * ended with the response status. The process route copies a sampled span's
 * context onto the item, so the batch span can link to it.
 *
 * Per request this costs one route-level onRequest hook on /process alone (no
 * global hook that every route pays for and must test the URL of) and one
 * sampling decision. Everything else is paid by sampled requests only (1 % in
 * the benchmark's setting): one 'close' listener ends the span, whether the
 * answer was written or the caller went away first. A global onResponse or
 * onRequestAbort hook would cost every request a hook run, and the latter a
 * closure and a listener on every request held for a batch window.
 *
 * When tracing is off no hook is added: the per-request cost is one property
 * read of `request.requestSpan` (null).
 */
import type { ServerResponse } from 'node:http';
import type { Span } from '@opentelemetry/api';
import { SpanStatusCode } from '@opentelemetry/api';
import type { FastifyInstance, onRequestHookHandler } from 'fastify';
import type { Tracing } from './tracing.ts';

declare module 'fastify' {
  interface FastifyRequest {
    requestSpan: Span | null;
  }
}

export function registerRequestSpans(app: FastifyInstance, tracing: Tracing | null, url: string): void {
  app.decorateRequest('requestSpan', null);
  if (tracing === null) return;
  const startSpan: onRequestHookHandler = (request, reply, done) => {
    const span = tracing.startRequestSpan(request.headers);
    if (span !== null) {
      request.requestSpan = span;
      const response = reply.raw;
      response.once('close', () => endSpan(span, response));
    }
    done();
  };
  // Registered before the route, so it sees the route being added.
  app.addHook('onRoute', (route) => {
    if (route.url !== url) return;
    const own = route.onRequest;
    route.onRequest = own === undefined ? [startSpan] : [...(Array.isArray(own) ? own : [own]), startSpan];
  });
}

function endSpan(span: Span, response: ServerResponse): void {
  if (response.writableFinished) {
    span.setAttribute('http.response.status_code', response.statusCode);
    if (response.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  } else {
    // The caller went away before its answer was written.
    span.setAttribute('http.request.aborted', true);
  }
  span.end();
}
