/** A real HTTP client for the tests: undici with enough connections for the concurrency a test wants. */
import { Agent, request } from 'undici';

export const agent = new Agent({ connections: 4096, keepAliveTimeout: 10_000 });

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: unknown;
  readonly ms: number;
}

export async function post(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
  raw = false,
): Promise<Answer> {
  const started = performance.now();
  const response = await request(`${url}/process`, {
    method: 'POST',
    dispatcher: agent,
    headers: { 'content-type': 'application/json', ...headers },
    body: raw ? (body as string) : JSON.stringify(body),
  });
  const text = await response.body.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep the text
  }
  return { status: response.statusCode, headers: response.headers, body: parsed, ms: performance.now() - started };
}

export async function get(url: string): Promise<{ status: number; body: unknown }> {
  const response = await request(url, { dispatcher: agent });
  return { status: response.statusCode, body: await response.body.json() };
}
