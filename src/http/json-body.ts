/**
 * The only body parser: application/json, kept as the exact bytes the caller
 * sent (they are forwarded downstream as they are, never re-serialised) and
 * parsed once to validate them and to read the shard key field.
 *
 * Other content types get Fastify's 415 (FST_ERR_CTP_INVALID_MEDIA_TYPE); a body
 * over MAX_BODY_BYTES gets Fastify's 413 (FST_ERR_CTP_BODY_TOO_LARGE); an empty
 * body, invalid UTF-8 or invalid JSON get Fastify's own 400 codes; JSON nested
 * deeper than MAX_JSON_DEPTH gets SIDECAR_ERR_JSON_TOO_DEEP (400).
 */
import { isUtf8 } from 'node:buffer';
import { errorCodes, type FastifyInstance } from 'fastify';
import { SidecarErrors } from '../errors.ts';

/**
 * Deeper items are refused (400): a legacy downstream's parser may recurse and
 * crash on them, failing a whole batch of other callers, and serialising the
 * result back would overflow the stack here too.
 */
export const MAX_JSON_DEPTH = 128;

/** Does the JSON text nest arrays and objects deeper than `limit`? (Brackets inside strings do not count.) */
export function nestingDepthExceeds(body: Buffer, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const byte = body[i];
    if (inString) {
      if (byte === 0x5c) i++; // backslash: skip the escaped byte
      else if (byte === 0x22) inString = false;
    } else if (byte === 0x22) inString = true;
    else if (byte === 0x5b || byte === 0x7b) {
      if (++depth > limit) return true;
    } else if (byte === 0x5d || byte === 0x7d) depth--;
  }
  return false;
}

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
    // Nesting can only exceed the limit in a body at least twice as long.
    if (body.length > 2 * MAX_JSON_DEPTH && nestingDepthExceeds(body, MAX_JSON_DEPTH)) {
      done(new SidecarErrors.SIDECAR_ERR_JSON_TOO_DEEP(MAX_JSON_DEPTH), undefined);
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
