import type { ResourceType } from '../kube/resources.js';
import { GROUP, VERSION } from './meta.js';

/** REST descriptors of Stowage's own resources, for the client and informers. */
export const STORAGE_POOLS: ResourceType = {
  group: GROUP,
  version: VERSION,
  plural: 'storagepools',
  kind: 'StoragePool',
  namespaced: false,
};
export const NODE_DISKS: ResourceType = { group: GROUP, version: VERSION, plural: 'nodedisks', kind: 'NodeDisk', namespaced: false };
export const POOL_VOLUMES: ResourceType = { group: GROUP, version: VERSION, plural: 'poolvolumes', kind: 'PoolVolume', namespaced: false };
export const POOL_SNAPSHOTS: ResourceType = {
  group: GROUP,
  version: VERSION,
  plural: 'poolsnapshots',
  kind: 'PoolSnapshot',
  namespaced: false,
};
