/**
 * Every condition reason the node agent and the operator report, in words: a short phrase for the
 * tables and a sentence with what to do for `why`. The condition's own message (which carries the
 * specifics: paths, sizes, names) is shown beside the sentence; these add the meaning and the fix.
 *
 * Kept in step with src/node/agent/{inventory,agent,smart}.ts, src/node/engine/btrfs-engine.ts and
 * src/operator/storagepool/status.ts: test/cli/reasons.test.ts reads those sources and fails when a
 * reason they can report is missing here.
 */

export interface ReasonText {
  /** A few words for a table cell. */
  readonly short: string;
  /** What it means and what to do, for `why`. */
  readonly sentence: string;
}

/** NodeDisk `Eligible` reasons (src/node/agent/inventory.ts eligibility(), agent.ts view()). */
export const ELIGIBLE_REASONS: Record<string, ReasonText> = {
  Blank: {
    short: 'free: blank, no pool selects it',
    sentence: 'the disk is blank and eligible; a pool claims it once its disks.selector (and nodeSelector, minSize) match',
  },
  DiscoveredMount: {
    short: 'free: mounted directory, no pool selects it',
    sentence: 'the mounted directory is eligible; only a Local Filesystem pool whose selector matches takes it',
  },
  SystemDisk: { short: 'system disk', sentence: "it holds the node's root or boot filesystem; Stowage never uses it" },
  ExcludedByFilter: {
    short: 'excluded by agent filter',
    sentence: "the node agent's --include/--exclude filters rule it out; change the agent's flags to use it",
  },
  ReadOnly: { short: 'read-only', sentence: 'the kernel reports the device read-only; it cannot hold volumes' },
  Mounted: {
    short: 'mounted elsewhere',
    sentence: 'something on the node has it mounted; unmount it (and drop it from /etc/fstab) to make it eligible',
  },
  HasPartitions: {
    short: 'has partitions',
    sentence:
      'it carries a partition table; Stowage only takes blank disks, unless the pool sets disks.allowAdoption (which destroys the data)',
  },
  HasFilesystem: {
    short: 'has a filesystem',
    sentence:
      'it carries a filesystem or other signature; Stowage only takes blank disks, unless the pool sets disks.allowAdoption (which destroys the data); `wipefs -a` erases it',
  },
  TooSmall: { short: 'too small', sentence: "it is smaller than the node agent's --min-size" },
  Claimed: { short: 'claimed', sentence: 'a pool has claimed it' },
  Cordoned: {
    short: 'cordoned',
    sentence: 'an administrator cordoned it (spec.schedulable: false); `kubectl stowage uncordon DISK` lets pools claim it again',
  },
  NotPresent: {
    short: 'not attached',
    sentence: 'the node agent does not see the disk on the node any more; reattach it, or delete the NodeDisk if it is gone for good',
  },
  PreviouslyUsed: {
    short: 'held: used before',
    sentence:
      "Stowage handed this disk out before its NodeDisk was deleted, so it may hold a previous tenant's data: it is held and nothing on it is changed; set spec.erasePreviousData: true on the NodeDisk to erase every byte and offer it again (runbook StowageDiskUnhealthy)",
  },
  NotDiscovered: {
    short: 'not discovered',
    sentence:
      "no node agent discovered this device: the NodeDisk was made by hand, or the device is not on the agent's allow-list or not on this node; delete the NodeDisk, or allow the device on the node agent",
  },
};

/** NodeDisk `Healthy` reasons (src/node/agent/smart.ts healthCondition()). */
export const HEALTHY_REASONS: Record<string, ReasonText> = {
  SmartPassed: { short: 'ok', sentence: 'SMART reports the disk healthy' },
  Passed: { short: 'ok', sentence: 'SMART reports the disk healthy' },
  NotChecked: { short: 'not checked', sentence: 'the node agent has not read SMART yet' },
  SmartUnavailable: {
    short: 'unknown',
    sentence: 'the disk reports no SMART data (virtual and loop devices do not); health is unknown, not bad',
  },
  SmartFailed: { short: 'FAILING', sentence: "SMART predicts the disk's failure: move its data off (drain it) and replace it" },
  PendingSectors: {
    short: 'pending sectors',
    sentence: 'SMART counts sectors waiting to be remapped: the disk is degrading; plan its replacement',
  },
  MediaErrors: { short: 'media errors', sentence: 'the NVMe device logs media errors: the disk is degrading; plan its replacement' },
  NoMedium: {
    short: 'NO MEDIUM',
    sentence:
      'the device reports a size of 0: it was pulled or detached while in use and every read or write fails; follow the StowageDiskUnhealthy runbook (unmount, replace the disk)',
  },
  FilesystemErrors: {
    short: 'fs errors',
    sentence:
      "the kernel counted errors on the disk's filesystem (I/O errors or an aborted journal): writes may fail or be lost; follow the StowageDiskUnhealthy runbook",
  },
};

/** NodeDisk `Prepared` reasons (src/node/agent/agent.ts, src/node/engine/btrfs-engine.ts). */
export const PREPARED_REASONS: Record<string, ReasonText> = {
  Prepared: { short: 'ready', sentence: 'the node agent prepared it for its pool' },
  NotClaimed: { short: 'not claimed', sentence: 'no pool claims it' },
  NotPresent: { short: 'not attached', sentence: 'the disk is not attached to the node, so it cannot be prepared' },
  NotABlockDevice: { short: 'not a block device', sentence: 'the device path is not a block device any more; check the node' },
  EngineUnavailable: {
    short: 'no Dynamic engine',
    sentence:
      'the node agent runs without the Dynamic-pool engine; run `stowage node` with the CSI endpoint (the stowage-node DaemonSet does)',
  },
  EnginePending: { short: 'preparing', sentence: 'the Dynamic-pool engine has not reported on the disk yet' },
  EngineError: {
    short: 'engine error',
    sentence: "the Dynamic-pool engine failed on this node; its message says why, and the node daemon's log has the details",
  },
  ReleaseRefused: {
    short: 'release refused',
    sentence: 'the pool filesystem still holds volumes, so the disk cannot leave it yet; delete those volumes first',
  },
  DiskMissing: { short: 'missing', sentence: "the disk is gone from its pool's filesystem on the node" },
  HasFilesystem: {
    short: 'foreign filesystem',
    sentence: "the disk carries a filesystem that is not the pool's; set disks.allowAdoption on the pool to reuse it (destroys its data)",
  },
  Pending: { short: 'joining pool', sentence: "the disk is not yet part of the pool's filesystem; the engine adds it" },
  UncorrectableErrors: { short: 'uncorrectable errors', sentence: 'a scrub found errors it could not repair: data on the disk is damaged' },
  PreparationFailed: {
    short: 'preparation failed',
    sentence: 'the node agent could not prepare the disk and retries on every pass; its message says why',
  },
  ReleaseFailed: {
    short: 'release failed',
    sentence: "the node agent could not remove Stowage's filesystem from the released disk and retries on every pass; its message says why",
  },
  MountedElsewhere: {
    short: 'mounted elsewhere',
    sentence: 'something other than Stowage has the disk mounted; unmount it so the agent can prepare it',
  },
  UUIDMismatch: {
    short: 'wrong filesystem',
    sentence:
      'the filesystem on the device is not the one Stowage made for this disk (was the disk swapped?); nothing is mounted or formatted until the right disk is back',
  },
  FsTypeMismatch: {
    short: 'fsType changed',
    sentence:
      'the disk was prepared with another filesystem than the claim now asks for; Stowage never reformats a prepared disk: release it from the pool first',
  },
  InvalidClaim: {
    short: 'invalid claim',
    sentence:
      "the disk's claim contradicts itself (e.g. a Block claim with an fsType; an API server before 1.25 does not enforce the CRD's rules), so the agent changes nothing; its message names the field: correct or remove the claim",
  },
  MountFailed: { short: 'mount failed', sentence: "the prepared filesystem could not be mounted; check the node's kernel log (dmesg)" },
  HasPartitions: {
    short: 'has partitions',
    sentence:
      'the disk carries a partition table, so the agent formats nothing; set disks.allowAdoption on the pool to reuse it (destroys its data)',
  },
  PreviouslyUsed: {
    short: 'held: used before',
    sentence:
      "Stowage handed this disk out before its NodeDisk was deleted, so it may hold a previous tenant's data: nothing is prepared on it until spec.erasePreviousData: true on the NodeDisk has it erased (runbook StowageDiskUnhealthy)",
  },
  EraseFailed: {
    short: 'erase failed',
    sentence:
      "the node agent could not erase the previous tenant's data from the disk and retries on every pass; the disk is not offered until the erase succeeds; its message says why",
  },
  HandEdited: {
    short: 'devicePath set back',
    sentence:
      'someone edited spec.devicePath; the node agent owns it (the kernel name it sees for the disk) and set it back; to use another device, let the agent discover it instead of editing the NodeDisk',
  },
  NotDiscovered: {
    short: 'not discovered',
    sentence:
      'no node agent discovered this device, so nothing is prepared on it: delete the hand-made NodeDisk, or allow the device on the node agent',
  },
  SystemDisk: ELIGIBLE_REASONS.SystemDisk,
  ExcludedByFilter: ELIGIBLE_REASONS.ExcludedByFilter,
  ReadOnly: ELIGIBLE_REASONS.ReadOnly,
  Mounted: ELIGIBLE_REASONS.Mounted,
  TooSmall: ELIGIBLE_REASONS.TooSmall,
};

/** StoragePool condition reasons (src/operator/storagepool/status.ts, src/operator/ceph/placement-status.ts). */
export const POOL_REASONS: Record<string, ReasonText> = {
  Ready: { short: 'ready', sentence: 'the pool serves volumes' },
  InvalidSpec: {
    short: 'invalid spec',
    sentence:
      'the operator rejected the spec; fix the fields named in the message and apply again (`stowage validate -f FILE` checks offline)',
  },
  DisksReleasing: {
    short: 'releasing disks',
    sentence:
      "the pool is being deleted and waits until the node agent of every disk it held has released it (unmounted, Stowage's filesystem erased); the message names each disk and what its agent says; an agent gone for good: `kubectl label nodedisk DISK stowage.dev/pool-` (docs/uninstall.md)",
  },
  DeletionBlocked: {
    short: 'deletion blocked',
    sentence:
      'the pool is being deleted but workloads still use its volumes; Stowage deletes nothing a workload uses, so delete those claims to let it go',
  },
  StorageClassConflict: {
    short: 'StorageClass conflict',
    sentence:
      'the StorageClass name the pool wants belongs to something else; pick another spec.storageClass.name or remove the other class',
  },
  DisksClaimedByOtherPools: {
    short: 'disks taken',
    sentence:
      "every disk the pool selects already belongs to another pool (the older claim wins); narrow the other pool's selector or add disks",
  },
  NoDisks: { short: 'no disks', sentence: 'no eligible disk matches spec.disks' },
  Preparing: {
    short: 'preparing',
    sentence: 'disks are claimed and the node agents are preparing them; if it lasts, check that a node agent runs on their nodes',
  },
  AllHealthy: { short: 'healthy', sentence: 'every disk of the pool is present and healthy' },
  DisksMissing: {
    short: 'disks missing',
    sentence: "some of the pool's disks are no longer seen on their nodes; their unbound volumes are withdrawn, bound ones stay",
  },
  DisksUnhealthy: {
    short: 'disks unhealthy',
    sentence:
      "some of the pool's disks report failing health; their unbound volumes are withdrawn, bound ones stay. Drain and replace them",
  },
  SingleCopy: { short: 'single copy', sentence: 'a Local pool keeps one copy of each volume' },
  EnoughDisks: { short: 'satisfiable', sentence: 'every node has enough disks for the requested copies' },
  TooFewDisks: {
    short: 'too few disks',
    sentence: 'replication is not satisfiable: some nodes have fewer disks than replicated.size; add disks there, or lower replicated.size',
  },
  // failureDomain host and zone (src/operator/ceph/): placement is checked before anything is created.
  ReplicationNotSatisfiable: {
    short: 'too few nodes for the copies',
    sentence:
      'the pool cannot keep its copies on different nodes (failureDomain host) or zones (zone) with the disks there are, so nothing is created for it: no StorageClass, no disk claims',
  },
  TooFewFailureDomains: {
    short: 'too few nodes/zones',
    sentence:
      'replication is not satisfiable: fewer nodes (failureDomain host) or zones (zone) hold eligible disks the pool selects than replicated.size; add eligible disks on other nodes or zones, label nodes with topology.kubernetes.io/zone, or lower replicated.size',
  },
  EnoughFailureDomains: {
    short: 'satisfiable',
    sentence: 'enough nodes (or zones) hold eligible disks to keep every copy on a different one',
  },
  CephEngineNotDeployed: {
    short: 'Ceph not deployed yet',
    sentence:
      'copies on other nodes are kept by Ceph, which this version of Stowage does not deploy yet: the placement is checked, but no StorageClass is published and no disk is claimed, so no claim waits for volumes nobody can serve; use failureDomain disk for volumes today (docs/replication-across-nodes.md)',
  },
  FailureDomainChanged: {
    short: 'failure domain changed',
    sentence:
      'replicated.failureDomain changed from disk to host or zone while the pool held disks; data does not move between engines, so nothing is changed: set it back to disk, or move the data to a new pool and delete this one',
  },
  NoCapacity: { short: 'no capacity', sentence: 'the pool has no usable capacity yet' },
  LowCapacity: {
    short: 'low capacity',
    sentence: "available capacity is below the pool's low watermark; add disks (widen disks.selector) or free volumes",
  },
  Sufficient: { short: 'sufficient', sentence: 'capacity is above the low watermark' },
  UnsupportedKubernetes: {
    short: 'Kubernetes too old',
    sentence:
      "the cluster's Kubernetes version is older than Stowage supports, so nothing is done for the pool; upgrade the control plane (docs/install.md: Support matrix)",
  },
  // DriverReady (Dynamic pools): the CSI node plugin on the pool's nodes.
  DriverNotReady: {
    short: 'driver not running',
    sentence:
      "the CSI node plugin serves none of the pool's nodes, so no volume can be mounted; look at the stowage-node pods on those nodes (`kubectl -n stowage-system get pods -o wide`)",
  },
  PluginsRunning: { short: 'driver running', sentence: 'the CSI node plugin runs and is registered on every node of the pool' },
  NoNodesYet: { short: 'no nodes yet', sentence: 'the pool holds no disk yet, so no node needs the CSI plugin' },
  NotObserved: {
    short: 'driver not watched',
    sentence: 'the operator was started without the driver stack, so it cannot say whether the CSI node plugin runs',
  },
  DaemonSetMissing: {
    short: 'no node DaemonSet',
    sentence: 'the node DaemonSet does not exist yet; the operator creates it, so check its log if this lasts',
  },
  PluginsNotRunning: {
    short: 'driver not running on some nodes',
    sentence:
      "the CSI node plugin is not serving on some of the pool's nodes (named in the message, each with its reason); volumes there cannot be mounted",
  },
  ImagePullBackOff: {
    short: 'image pull failing',
    sentence:
      "kubelet cannot pull the node plugin's image on the named nodes; check the image reference (operator --image) and the registry's reachability and credentials",
  },
  ErrImagePull: {
    short: 'image pull failing',
    sentence:
      "kubelet cannot pull the node plugin's image on the named nodes; check the image reference (operator --image) and the registry's reachability and credentials",
  },
  CrashLoopBackOff: {
    short: 'plugin crashing',
    sentence: 'the node plugin keeps crashing on the named nodes; its log says why (`kubectl -n stowage-system logs -p <pod>`)',
  },
  NotRegistered: {
    short: 'plugin not registered',
    sentence:
      "the node plugin runs but kubelet has not registered it (its CSINode lacks csi.stowage.dev); check kubelet's plugin directory mount and the plugin's log",
  },
  NoPluginPod: {
    short: 'no plugin pod',
    sentence: "no node plugin pod runs on the named nodes; check the DaemonSet's node selector and tolerations against those nodes' taints",
  },
  // SnapshotsAvailable (Dynamic pools): the pool's VolumeSnapshotClass.
  ClassReady: { short: 'snapshots available', sentence: "the pool's VolumeSnapshotClass exists and takes snapshots of its volumes" },
  ClassConflict: {
    short: 'snapshot class conflict',
    sentence:
      "a VolumeSnapshotClass with the pool's name exists and is not the pool's; delete it or rename the pool's StorageClass (spec.storageClass.name)",
  },
  SnapshotCRDsMissing: {
    short: 'no snapshot CRDs',
    sentence:
      "the cluster has no snapshot.storage.k8s.io CRDs, so the pool's volumes cannot be snapshotted; install the external-snapshotter CRDs and snapshot-controller (docs/snapshots.md)",
  },
};

export function reasonText(table: Record<string, ReasonText>, reason: string | undefined): ReasonText | undefined {
  return reason === undefined ? undefined : table[reason];
}
