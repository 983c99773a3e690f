import { VERSION } from '../util/version.js';
import { csiV1, serviceDefinition, unaryHandlers, type CallObserver, type GrpcService } from './grpc.js';

/** The CSI driver name: StorageClass provisioner, CSIDriver object, kubelet plugin registration. */
export const DRIVER_NAME = 'csi.stowage.dev';
/** Topology segment naming the node a volume lives on (volumes of a Dynamic pool are node-local). */
export const TOPOLOGY_KEY = 'topology.stowage.dev/node';

/**
 * The Identity service, served by the controller and by every node daemon alike. `ready` backs
 * Probe: the controller is ready once its caches are synced, a node once its engine is up.
 */
export function identityService(ready: () => boolean, observe?: CallObserver): GrpcService {
  return {
    definition: serviceDefinition(csiV1(), 'Identity'),
    implementation: unaryHandlers(
      'Identity',
      {
        GetPluginInfo: () => Promise.resolve({ name: DRIVER_NAME, vendor_version: VERSION, manifest: {} }),
        GetPluginCapabilities: () =>
          Promise.resolve({
            capabilities: [
              { service: { type: 'CONTROLLER_SERVICE' } },
              { service: { type: 'VOLUME_ACCESSIBILITY_CONSTRAINTS' } },
              { volume_expansion: { type: 'ONLINE' } },
            ],
          }),
        // async: a throw from ready() becomes a rejection the handler answers as a gRPC error.
        // eslint-disable-next-line @typescript-eslint/require-await -- see above
        Probe: async () => ({ ready: { value: ready() } }),
      },
      observe,
    ),
  };
}
