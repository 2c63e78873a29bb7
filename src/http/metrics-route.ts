/** GET /metrics: Prometheus text exposition (SPEC §7). */
import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../telemetry/metrics.ts';

export function registerMetricsRoute(app: FastifyInstance, metrics: Metrics): void {
  app.get('/metrics', async (_request, reply) => {
    reply.type(metrics.contentType);
    return metrics.exposition();
  });
}
