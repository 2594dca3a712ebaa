// Prometheus metrics of a serving node (/metrics), on prom-client.
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ServerMetrics {
  registry: Registry;
  requests: Counter<'route' | 'method' | 'status'>;
  duration: Histogram<'route'>;
  bytesSent: Counter<'route'>;
  bytesReceived: Counter<'route'>;
  pushes: Counter<'result'>;
  refUpdates: Counter<'result'>;
}

export function createMetrics(): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'packferry_' });
  return {
    registry,
    requests: new Counter({ name: 'packferry_http_requests_total', help: 'HTTP requests by route, method and status', labelNames: ['route', 'method', 'status'], registers: [registry] }),
    duration: new Histogram({
      name: 'packferry_http_request_duration_seconds',
      help: 'Time to answer a request, by route',
      labelNames: ['route'],
      buckets: [0.005, 0.02, 0.1, 0.5, 2, 10, 60, 300],
      registers: [registry],
    }),
    bytesSent: new Counter({ name: 'packferry_http_sent_bytes_total', help: 'Response bytes by route', labelNames: ['route'], registers: [registry] }),
    bytesReceived: new Counter({ name: 'packferry_http_received_bytes_total', help: 'Request body bytes by route', labelNames: ['route'], registers: [registry] }),
    pushes: new Counter({ name: 'packferry_pushes_total', help: 'Pushes by result (ok: every ref accepted)', labelNames: ['result'], registers: [registry] }),
    refUpdates: new Counter({ name: 'packferry_ref_updates_total', help: 'Ref updates in pushes by result', labelNames: ['result'], registers: [registry] }),
  };
}
