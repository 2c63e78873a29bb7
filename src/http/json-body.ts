/**
 * The only body parser: application/json, kept as the exact bytes the caller
 * sent (they are forwarded downstream as they are, never re-serialised) and
 * parsed once to validate them and to read the shard key field.
 *
 * Other content types get Fastify's 415 (FST_ERR_CTP_INVALID_MEDIA_TYPE); a body
 * over MAX_BODY_BYTES gets Fastify's 413 (FST_ERR_CTP_BODY_TOO_LARGE); an empty
 * body, invalid UTF-8 or invalid JSON get Fastify's own 400 codes.
 */
import { isUtf8 } from 'node:buffer';
import { errorCodes, type FastifyInstance } from 'fastify';

declare module 'fastify' {
  interface FastifyRequest {
    /** The JSON body exactly as received. */
    rawBody: Buffer | null;
  }
}

export function registerJsonBody(app: FastifyInstance): void {
  app.decorateRequest('rawBody', null);
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body: Buffer, done) => {
    if (body.length === 0) {
      done(new errorCodes.FST_ERR_CTP_EMPTY_JSON_BODY(), undefined);
      return;
    }
    // Forwarding bytes that are not UTF-8 would hand the downstream a body it
    // cannot read, and fail a whole batch of other callers with it.
    if (!isUtf8(body)) {
      done(new errorCodes.FST_ERR_CTP_INVALID_JSON_BODY(), undefined);
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch {
      done(new errorCodes.FST_ERR_CTP_INVALID_JSON_BODY(), undefined);
      return;
    }
    request.rawBody = body;
    done(null, value);
  });
}
