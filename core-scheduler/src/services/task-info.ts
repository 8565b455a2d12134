/**
 * One instance of an app as a v1 TaskInfo: command or Docker image, the
 * resources carved from the offer, the instance's own external volumes (same
 * names on every host, so an rbd volume follows its instance), the CNI
 * network with port mappings, DiscoveryInfo (DNS `<app>.<framework>.<domain>`),
 * the health check, the kill grace period and labels.
 */
import type { Resources } from '../resources/resources.js';
import type { V1TaskInfo } from '../../../contracts/v1/v1.js';
import { instanceVolumeNames, type AppSpec, type HealthCheckSpec } from './app-spec.js';

interface LaunchSlot {
  app: AppSpec;
  index: number;
  taskId: string;
  agentId: string;
  role: string;
  resources: Resources;
  /** Host ports chosen for app.ports, in the same order. */
  hostPorts: number[];
}

const envName = (portName: string): string => portName.toUpperCase().replace(/-/g, '_');

/** The port other tasks reach: the container port on a CNI network, else the host port. */
function servicePort(app: AppSpec, i: number, hostPorts: number[]): number {
  const p = app.ports[i]!;
  return app.network && p.containerPort !== undefined ? p.containerPort : hostPorts[i]!;
}

function environment(s: LaunchSlot): Array<{ name: string; value: string }> {
  const vars: Record<string, string> = { CORRAL_APP_ID: s.app.id, CORRAL_INSTANCE_INDEX: String(s.index) };
  s.hostPorts.forEach((port, i) => {
    vars[`PORT${i}`] = String(port);
    const name = s.app.ports[i]?.name;
    if (name) vars[`PORT_${envName(name)}`] = String(port);
  });
  if (s.hostPorts.length) vars.PORT = String(s.hostPorts[0]);
  Object.assign(vars, s.app.env);
  return Object.entries(vars).map(([name, value]) => ({ name, value }));
}

function command(s: LaunchSlot): NonNullable<V1TaskInfo['command']> {
  const env = { variables: environment(s) };
  const user = s.app.user ? { user: s.app.user } : {};
  if (s.app.cmd) return { shell: true, value: s.app.cmd, environment: env, ...user };
  if (s.app.args) return { shell: false, value: s.app.args[0]!, arguments: s.app.args, environment: env, ...user };
  return { shell: false, environment: env, ...user };
}

function container(s: LaunchSlot): V1TaskInfo['container'] {
  const { app } = s;
  if (!app.image && !app.network && app.volumes.length === 0) return undefined;
  const names = instanceVolumeNames(app, s.index);
  const mappings = app.ports.flatMap((p, i) => (p.containerPort !== undefined ? [{ host_port: s.hostPorts[i]!, container_port: p.containerPort, protocol: p.protocol }] : []));
  return {
    type: app.image ? 'DOCKER' : 'MESOS',
    ...(app.image ? { docker: { image: app.image, force_pull_image: app.forcePullImage } } : {}),
    ...(app.volumes.length
      ? {
          volumes: app.volumes.map((v, k) => ({
            container_path: v.containerPath,
            mode: v.mode,
            source: {
              type: 'DOCKER_VOLUME' as const,
              docker_volume: { driver: v.driver, name: names[k]!, driver_options: { parameter: Object.entries(v.options).map(([key, value]) => ({ key, value })) } },
            },
          })),
        }
      : {}),
    ...(app.network ? { network_infos: [{ name: app.network, ...(mappings.length ? { port_mappings: mappings } : {}) }] } : {}),
  };
}

function healthCheck(app: AppSpec, hc: HealthCheckSpec, hostPorts: number[]): NonNullable<V1TaskInfo['health_check']> {
  const timing = {
    delay_seconds: hc.delaySeconds,
    interval_seconds: hc.intervalSeconds,
    timeout_seconds: hc.timeoutSeconds,
    consecutive_failures: hc.consecutiveFailures,
    grace_period_seconds: hc.gracePeriodSeconds,
  };
  if (hc.type === 'COMMAND') return { type: 'COMMAND', ...timing, command: { shell: true, value: hc.command! } };
  const port =
    typeof hc.port === 'number'
      ? hc.port
      : servicePort(
          app,
          Math.max(
            0,
            app.ports.findIndex((p) => hc.port === undefined || p.name === hc.port),
          ),
          hostPorts,
        );
  return hc.type === 'HTTP' ? { type: 'HTTP', ...timing, http: { port, path: hc.path, scheme: hc.scheme } } : { type: 'TCP', ...timing, tcp: { port } };
}

export function buildTaskInfo(s: LaunchSlot): V1TaskInfo {
  const { app } = s;
  const labels = [...Object.entries(app.labels), ['corral.app', app.id], ['corral.instance', String(s.index)]].map(([key, value]) => ({ key: key!, value: value! }));
  const box = container(s);
  return {
    name: app.id,
    task_id: { value: s.taskId },
    agent_id: { value: s.agentId },
    resources: s.resources.toV1(s.role),
    command: command(s),
    ...(box ? { container: box } : {}),
    ...(app.healthCheck ? { health_check: healthCheck(app, app.healthCheck, s.hostPorts) } : {}),
    ...(app.killGracePeriodSeconds !== undefined ? { kill_policy: { grace_period: { nanoseconds: Math.round(app.killGracePeriodSeconds * 1e9) } } } : {}),
    labels: { labels },
    discovery: {
      visibility: 'CLUSTER',
      name: app.id,
      ...(app.ports.length ? { ports: { ports: app.ports.map((p, i) => ({ number: servicePort(app, i, s.hostPorts), ...(p.name ? { name: p.name } : {}), protocol: p.protocol })) } } : {}),
    },
  };
}
