/**
 * Prometheus metrics of the agent (prom-client, on its own registry).
 * @module
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export class AgentMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'vaccel_agent_requests_total',
    help: 'Requests handled, by method, op and status',
    labelNames: ['method', 'op', 'status'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'vaccel_agent_request_duration_seconds',
    help: 'Request handling time, by method and op',
    labelNames: ['method', 'op'] as const,
    buckets: [
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
      10,
    ],
    registers: [this.registry],
  });
  readonly bytesIn = new Counter({
    name: 'vaccel_agent_received_bytes_total',
    help: 'Request payload bytes received',
    registers: [this.registry],
  });
  readonly bytesOut = new Counter({
    name: 'vaccel_agent_sent_bytes_total',
    help: 'Reply payload bytes sent',
    registers: [this.registry],
  });
  readonly listenerBytesIn = new Counter({
    name: 'vaccel_agent_listener_received_bytes_total',
    help: 'Request payload bytes received, by the address the connection came in on',
    labelNames: ['listener'] as const,
    registers: [this.registry],
  });
  readonly listenerBytesOut = new Counter({
    name: 'vaccel_agent_listener_sent_bytes_total',
    help: 'Reply payload bytes sent, by the address the connection came in on',
    labelNames: ['listener'] as const,
    registers: [this.registry],
  });
  readonly sessions = new Gauge({
    name: 'vaccel_agent_sessions',
    help: 'Open sessions',
    registers: [this.registry],
  });
  readonly connections = new Gauge({
    name: 'vaccel_agent_connections',
    help: 'Open guest connections',
    registers: [this.registry],
  });
  readonly resourceBytes = new Gauge({
    name: 'vaccel_agent_resource_bytes',
    help: 'Bytes of resources held for guests',
    registers: [this.registry],
  });
  readonly memoryBudget = new Gauge({
    name: 'vaccel_agent_memory_budget_bytes',
    help: 'Bytes in flight the agent admits at once, all guests together (--max-memory)',
    registers: [this.registry],
  });
  readonly memoryInFlight = new Gauge({
    name: 'vaccel_agent_memory_in_flight_bytes',
    help: 'Bytes admitted against the memory budget now (frames, decoded images, op outputs)',
    registers: [this.registry],
  });
  readonly refusals = new Counter({
    name: 'vaccel_agent_refusals_total',
    help: 'Requests refused at admission, by reason (memory_frame, memory_image, memory_sgemm, memory_output, image_pixels, sessions, resource_bytes, compute_queue)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  // The compute scheduler (scheduler.ts). Tenant labels are bounded: "guest" for every connection,
  // or the groups of the tenants file, never connection ids, so a guest opening connections cannot
  // grow the registry.
  readonly computeSlots = new Gauge({
    name: 'vaccel_agent_compute_slots',
    help: 'Compute runs the agent allows at once, all guests together (--compute-slots)',
    registers: [this.registry],
  });
  readonly computeBusy = new Gauge({
    name: 'vaccel_agent_compute_slots_busy',
    help: 'Compute runs going on now',
    registers: [this.registry],
  });
  readonly tenantQueued = new Gauge({
    name: 'vaccel_agent_tenant_queue_depth',
    help: 'Compute calls waiting for a slot, by tenant class',
    labelNames: ['tenant'] as const,
    registers: [this.registry],
  });
  readonly tenantWait = new Histogram({
    name: 'vaccel_agent_tenant_wait_seconds',
    help: 'Time compute calls waited for a slot, by tenant class',
    labelNames: ['tenant'] as const,
    buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly tenantRejections = new Counter({
    name: 'vaccel_agent_tenant_rejections_total',
    help: 'Compute calls refused because their tenant had --max-queued queued or running, by tenant class',
    labelNames: ['tenant'] as const,
    registers: [this.registry],
  });

  readonly connectionsDropped = new Counter({
    name: 'vaccel_agent_connections_dropped_total',
    help: 'Connections refused or closed by a bound, by reason (max_connections, max_peer_connections, idle_timeout, frame_timeout, handover_connections, handover_peer)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly readPauses = new Counter({
    name: 'vaccel_agent_read_pauses_total',
    help: 'Times a connection stopped being read because its peer left too many reply bytes unread (--max-unsent-bytes)',
    registers: [this.registry],
  });
  readonly repliesRefused = new Counter({
    name: 'vaccel_agent_replies_refused_total',
    help: 'Replies dropped (their call answered RESOURCE_EXHAUSTED) because their guest had left more than twice --max-unsent-bytes unread',
    registers: [this.registry],
  });
  /** What the connection gauges below read at scrape time (set by the agent). */
  connectionsNow: () => { unsent: number; paused: number } = () => ({ unsent: 0, paused: 0 });
  readonly unsentBytes: Gauge = new Gauge({
    name: 'vaccel_agent_unsent_bytes',
    help: 'Reply bytes written to guests and not yet read by them, all connections together',
    registers: [this.registry],
    collect: (): void => this.unsentBytes.set(this.connectionsNow().unsent),
  });
  readonly pausedConnections: Gauge = new Gauge({
    name: 'vaccel_agent_paused_connections',
    help: 'Connections not being read now because their peer does not read its replies',
    registers: [this.registry],
    collect: (): void => this.pausedConnections.set(this.connectionsNow().paused),
  });

  /** Serves `/metrics` over HTTP on `host:port`. */
  /**
   * Serves `/metrics` (Prometheus), `/healthz` (liveness: the process answers) and `/readyz`
   * (readiness: `ready()` says the agent listens and is not draining; 503 otherwise).
   */
  serve(host: string, port: number, ready: () => boolean = () => true): Promise<Server> {
    const server = createServer((request, response) => {
      const path = request.url?.split('?')[0];
      if (path === '/healthz') {
        response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      }
      if (path === '/readyz') {
        const ok = ready();
        response
          .writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' })
          .end(ok ? 'ready\n' : 'not ready\n');
        return;
      }
      if (path !== '/metrics') {
        response.writeHead(404).end('not found; try /metrics, /healthz or /readyz\n');
        return;
      }
      this.registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (error: Error) => response.writeHead(500).end(error.message),
      );
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve(server));
    });
  }
}
