// Prometheus metrics of a serving node (/metrics), on prom-client. Every
// label value comes from a fixed set (routes, methods, reasons, results):
// nothing a client sends becomes a label, so the number of series is bounded.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ServerMetrics {
  registry: Registry;
  requests: Counter<'route' | 'method' | 'status'>;
  duration: Histogram<'route'>;
  bytesSent: Counter<'route'>;
  bytesReceived: Counter<'route'>;
  pushes: Counter<'result'>;
  refUpdates: Counter<'result'>;
  /** Requests refused with 503 before any work, by bound (requests, client, memory). */
  shed: Counter<'reason'>;
  /** Requests cut off: a body too slow (body) or a reader that stopped reading (send). */
  timeouts: Counter<'kind'>;
  /** Git requests refused in-band (an "ERR" line) before any answer. */
  refusals: Counter<'route'>;
  /** Reports the requests in progress (admission.ts) on every scrape. */
  setInFlight(read: () => number): void;
}

export function createMetrics(): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'packferry_' });
  let inFlight: () => number = () => 0;
  new Gauge({
    name: 'packferry_http_requests_in_flight',
    help: 'Requests in progress (those counted against the admission bounds)',
    registers: [registry],
    collect() {
      this.set(inFlight());
    },
  });
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
    shed: new Counter({ name: 'packferry_http_shed_total', help: 'Requests refused with 503 before any work, by the bound reached', labelNames: ['reason'], registers: [registry] }),
    timeouts: new Counter({ name: 'packferry_http_timeouts_total', help: 'Requests cut off: a request body too slow (body), a client that stopped reading (send)', labelNames: ['kind'], registers: [registry] }),
    refusals: new Counter({ name: 'packferry_git_refusals_total', help: 'Git requests refused with an ERR line before any answer', labelNames: ['route'], registers: [registry] }),
    setInFlight(read) {
      inFlight = read;
    },
  };
}
