/**
 * Request spans for POST /process, when tracing is on: started as a child of
 * the caller's `traceparent` (if any) and sampled by the configured sampler,
 * ended with the response status. The process route copies a sampled span's
 * context onto the item, so the batch span can link to it.
 *
 * When tracing is off no hook is added: the per-request cost is one property
 * read of `request.requestSpan` (null).
 */
import type { Span } from '@opentelemetry/api';
import { SpanStatusCode } from '@opentelemetry/api';
import type { FastifyInstance } from 'fastify';
import type { Tracing } from './tracing.ts';

declare module 'fastify' {
  interface FastifyRequest {
    requestSpan: Span | null;
  }
}

export function registerRequestSpans(app: FastifyInstance, tracing: Tracing | null): void {
  app.decorateRequest('requestSpan', null);
  if (tracing === null) return;
  app.addHook('onRequest', (request, _reply, done) => {
    if (request.routeOptions.url === '/process') {
      const span = tracing.startRequestSpan(request.headers);
      // Only a sampled span is kept until the answer. An unsampled one records
      // nothing and is dropped at once: held on the request it would live as
      // long as the request (a batch window plus a downstream call) and be
      // promoted to the old generation with it, for nothing.
      if (span.isRecording()) request.requestSpan = span;
    }
    done();
  });
  // A caller that disconnects before its answer gets no onResponse: end its
  // sampled span here, or it would never be exported.
  app.addHook('onRequestAbort', (request, done) => {
    const span = request.requestSpan;
    if (span !== null) {
      span.setAttribute('http.request.aborted', true);
      span.end();
      request.requestSpan = null;
    }
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    const span = request.requestSpan;
    if (span !== null) {
      span.setAttribute('http.response.status_code', reply.statusCode);
      if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    }
    done();
  });
}
