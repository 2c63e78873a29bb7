/**
 * The baseline: a bare Fastify route that answers what the sidecar answers
 * (`{"echo": <item>}`, the simulated downstream's result) straight away, with
 * no batching and no downstream call. It parses the JSON body and serialises
 * the answer, as the sidecar does; it logs nothing per request, like the sidecar.
 *
 * Run alone: `node bench/bare-server.ts` (PORT, default 0; HOST, default
 * 127.0.0.1). Prints one JSON line `{"msg":"bare ready","port":N}`.
 */
import Fastify from 'fastify';

const app = Fastify({ logger: false, keepAliveTimeout: 65_000 });

app.post('/process', (request, reply) => {
  reply.type('application/json').send(JSON.stringify({ echo: request.body }));
  return reply;
});

await app.listen({ port: Number(process.env.PORT ?? 0), host: process.env.HOST ?? '127.0.0.1' });
const address = app.server.address();
const port = typeof address === 'object' && address !== null ? address.port : 0;
process.stdout.write(`${JSON.stringify({ msg: 'bare ready', port })}\n`);

const stop = (): void => {
  app.server.closeAllConnections();
  void app.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
