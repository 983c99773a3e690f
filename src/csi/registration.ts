/**
 * kubelet plugin registration (pluginregistration v1): the node daemon serves a two-method gRPC
 * service on <plugins_registry>/csi.stowage.dev-reg.sock; kubelet's plugin watcher finds the socket,
 * calls GetInfo to learn the driver name and CSI endpoint, and reports the outcome through
 * NotifyRegistrationStatus. This replaces the node-driver-registrar sidecar.
 */
import { logger } from '../util/logger.js';
import { pluginRegistration, serveOnSocket, serviceDefinition, unaryHandlers, type SocketServer } from './grpc.js';
import { DRIVER_NAME } from './identity.js';

const log = logger('csi-registration');

export interface RegistrationStatus {
  registered: boolean;
  error?: string;
}

export async function startRegistrationServer(opts: {
  dir: string;
  endpoint: string;
  onStatus?: (status: RegistrationStatus) => void;
}): Promise<SocketServer & { lastStatus(): RegistrationStatus | undefined }> {
  let last: RegistrationStatus | undefined;
  const server = await serveOnSocket(`${opts.dir}/${DRIVER_NAME}-reg.sock`, [
    {
      definition: serviceDefinition(pluginRegistration(), 'Registration'),
      implementation: unaryHandlers('Registration', {
        GetInfo: () => Promise.resolve({ type: 'CSIPlugin', name: DRIVER_NAME, endpoint: opts.endpoint, supported_versions: ['1.0.0'] }),
        // eslint-disable-next-line @typescript-eslint/require-await -- async: a throw from onStatus becomes a rejection the handler answers
        NotifyRegistrationStatus: async (req: { plugin_registered?: boolean; error?: string }) => {
          last = { registered: req.plugin_registered === true, ...(req.error ? { error: req.error } : {}) };
          if (last.registered) log.info('kubelet registered the plugin');
          else log.error({ error: last.error }, 'kubelet refused the plugin registration');
          opts.onStatus?.(last);
          return {};
        },
      }),
    },
  ]);
  return { ...server, lastStatus: () => last };
}
