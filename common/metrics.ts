/**
 * Prometheus metrics for a daemon. Each daemon owns one registry (so two
 * daemons in one test process do not collide) and serves it at GET /metrics.
 */
import client from 'prom-client';
import type { ServerResponse } from 'node:http';

/** What `serve` needs of a server (common/http's HttpServer is one): a GET route. */
interface MetricsRouteTarget {
  route(method: 'GET', path: string, handler: (ctx: { res: ServerResponse }) => Promise<void>): unknown;
}

export class Metrics {
  readonly registry = new client.Registry();

  constructor(
    readonly prefix: string,
    collectProcess = true,
  ) {
    if (collectProcess) client.collectDefaultMetrics({ register: this.registry, prefix: `${prefix}_` });
  }

  counter(name: string, help: string, labelNames: string[] = []): client.Counter<string> {
    return new client.Counter({ name: `${this.prefix}_${name}`, help, labelNames, registers: [this.registry] });
  }

  gauge(name: string, help: string, labelNames: string[] = [], collect?: (g: client.Gauge<string>) => void): client.Gauge<string> {
    return new client.Gauge({
      name: `${this.prefix}_${name}`,
      help,
      labelNames,
      registers: [this.registry],
      ...(collect
        ? {
            collect(this: client.Gauge<string>) {
              collect(this);
            },
          }
        : {}),
    });
  }

  histogram(name: string, help: string, buckets: number[], labelNames: string[] = []): client.Histogram<string> {
    return new client.Histogram({ name: `${this.prefix}_${name}`, help, buckets, labelNames, registers: [this.registry] });
  }

  /** Mount GET /metrics on a server. */
  serve(server: MetricsRouteTarget): void {
    server.route('GET', '/metrics', async (ctx) => {
      const text = await this.registry.metrics();
      ctx.res.setHeader('Content-Type', this.registry.contentType);
      ctx.res.end(text);
    });
  }
}
