/** Kubernetes-style probes: liveness is "the process answers", readiness is "it takes work now". */
import type { FastifyInstance } from 'fastify';
import type { Lifecycle } from '../lifecycle.ts';

export function registerProbes(app: FastifyInstance, lifecycle: Lifecycle): void {
  app.get('/healthz', (_request, reply) => {
    reply.send({ status: 'ok' });
  });
  app.get('/readyz', (_request, reply) => {
    if (lifecycle.isReady) reply.send({ status: 'ready' });
    else reply.code(503).send({ status: lifecycle.phase });
  });
}
