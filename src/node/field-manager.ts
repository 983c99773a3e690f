/**
 * The server-side apply field manager of the node daemon (`stowage node`): its agent (NodeDisk
 * status, Local claims) and its engine (PoolVolume and PoolSnapshot status) write as one
 * component, so `managedFields` show one owner per role (docs/architecture.md, "Who writes what").
 */
export const NODE_FIELD_MANAGER = 'stowage-node';
