import { Counter, Histogram, type Registry } from 'prom-client';
import type { KubeClient } from '../kube/client.js';

/** Counts and times every API call a component makes, by verb and resource. */
export function instrumentClient(client: KubeClient, registry: Registry): void {
  const requests = new Counter({
    name: 'stowage_api_requests_total',
    help: 'Kubernetes API requests by verb, resource and HTTP code (0: no answer)',
    labelNames: ['verb', 'resource', 'code'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'stowage_api_request_duration_seconds',
    help: 'Kubernetes API request latency by verb and resource (watches: how long the stream stayed open)',
    labelNames: ['verb', 'resource'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600],
    registers: [registry],
  });
  client.observe((call) => {
    const resource = call.subresource ? `${call.resource}/${call.subresource}` : call.resource;
    requests.inc({ verb: call.verb, resource, code: String(call.code) });
    duration.observe({ verb: call.verb, resource }, call.durationSeconds);
  });
}
