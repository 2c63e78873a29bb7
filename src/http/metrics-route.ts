/** GET /metrics: Prometheus text exposition (SPEC §7). */
import type { FastifyInstance } from 'fastify';

/** Where the text comes from: this thread's registry, or every thread's merged (src/ingress). */
export interface MetricsExposition {
  readonly contentType: string;
  exposition(): Promise<string>;
}

export function registerMetricsRoute(app: FastifyInstance, metrics: MetricsExposition): void {
  app.get('/metrics', async (_request, reply) => {
    reply.type(metrics.contentType);
    return metrics.exposition();
  });
}
