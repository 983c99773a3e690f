/**
 * `kubectl stowage why DISK|POOL|PVC`: the chain of reasons, in sentences, from conditions and
 * recent events — why a disk is not in a pool, why a pool is not Ready, why a claim of a Stowage
 * class is Pending. Pure: objects in, sentences out; the command does the reads.
 */
import { findCondition } from '../../runtime/conditions.js';
import { tryParseBytes } from '../../util/quantity.js';
import { selectionProblem } from '../../operator/storagepool/disk-plan.js';
import { persistentVolumeName } from '../../operator/storagepool/persistent-volume.js';
import { withDefaults } from '../../crds/validation.js';
import { CSI_DRIVER_NAME, LOCAL_PROVISIONER, POOL_LABEL } from '../../crds/labels.js';
import { POOL_CONDITIONS, type StoragePool } from '../../crds/storagepool.js';
import type { Condition, Node, PersistentVolume, StorageClass } from '../../kube/types.js';
import { humanBytes } from './output.js';
import { ELIGIBLE_REASONS, HEALTHY_REASONS, POOL_REASONS, PREPARED_REASONS, reasonText, type ReasonText } from './reasons.js';
import { eventTime, podsByClaim, type Claim, type Disk, type DriverState, type KubeEvent, type Pool, type Snapshot } from './snapshot.js';

/** Events older than this are history, not a reason. */
const RECENT_EVENTS = 5;
const SELECTED_NODE_ANNOTATION = 'volume.kubernetes.io/selected-node';

export interface Explanation {
  /** `NodeDisk x`, `StoragePool y`, `PersistentVolumeClaim ns/z`. */
  readonly subject: string;
  /** One line: the verdict. */
  readonly summary: string;
  /** The chain, each a sentence. */
  readonly reasons: string[];
  readonly events: string[];
}

const sentence = (text: ReasonText | undefined, c: Condition): string =>
  text ? `${capital(text.sentence)} (${c.reason}: ${c.message})` : `${c.type} is ${c.status} (${c.reason}): ${c.message}`;

function capital(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function formatEvents(events: readonly KubeEvent[]): string[] {
  return events.slice(-RECENT_EVENTS).map((e) => {
    const when = eventTime(e).replace('T', ' ').replace(/Z$/, '');
    const count = (e.count ?? 1) > 1 ? ` (x${e.count})` : '';
    return `${when}  ${e.type ?? 'Normal'}  ${e.reason ?? ''}: ${e.message ?? ''}${count}`;
  });
}

// ---- disks ---------------------------------------------------------------------------------

export function explainDisk(disk: Disk, snap: Snapshot, events: readonly KubeEvent[]): Explanation {
  const name = disk.metadata.name;
  const st = disk.status ?? {};
  const c = (t: string): Condition | undefined => findCondition(st.conditions, t);
  const present = c('Present');
  const eligible = c('Eligible');
  const healthy = c('Healthy');
  const prepared = c('Prepared');
  const claim = disk.spec.claim;
  const reasons: string[] = [];
  const where = `${disk.spec.devicePath} on node ${disk.spec.nodeName}${st.capacity ? `, ${humanBytes(tryParseBytes(st.capacity))}` : ''}`;

  if (!st.conditions) reasons.push('The node agent has not reported on this disk yet: is the stowage-node DaemonSet running on its node?');
  if (present?.status === 'False') reasons.push(sentence(ELIGIBLE_REASONS.NotPresent, present));
  if (healthy?.status === 'False') reasons.push(sentence(reasonText(HEALTHY_REASONS, healthy.reason), healthy));
  if (disk.spec.schedulable === false) {
    reasons.push(
      claim
        ? `It is cordoned (spec.schedulable: false): pool ${claim.pool} hands it back as soon as no workload uses its volume; \`kubectl stowage drain ${name}\` waits for that`
        : `It is cordoned (spec.schedulable: false), so no pool claims it; \`kubectl stowage uncordon ${name}\` lets pools claim it again`,
    );
  }

  let summary: string;
  if (claim) {
    summary = `belongs to pool ${claim.pool} (${claim.mode}${claim.volumeMode ? `, ${claim.volumeMode}` : ''}${claim.fsType ? ` ${claim.fsType}` : ''})`;
    if (prepared?.status === 'True') {
      reasons.push(
        `The node agent prepared it${st.preparation?.path ? ` (${st.preparation.filesystem ?? 'raw'} at ${st.preparation.path})` : ''}.`,
      );
    } else if (prepared) {
      reasons.push(
        `It is not ready for the pool yet: ${sentence(reasonText(PREPARED_REASONS, prepared.reason) ?? reasonText(ELIGIBLE_REASONS, prepared.reason), prepared)}`,
      );
    } else {
      reasons.push('The node agent has not reported its preparation yet.');
    }
    reasons.push(...volumeChain(disk, snap));
    if (!snap.pools.some((p) => p.metadata.name === claim.pool))
      reasons.push(`Pool ${claim.pool} no longer exists; the operator releases the disk once nothing uses it.`);
  } else {
    const held = prepared && ['ReleaseRefused', 'ReleaseFailed'].includes(prepared.reason);
    if (held) reasons.push(`It is being released from its pool, but: ${sentence(reasonText(PREPARED_REASONS, prepared.reason), prepared)}`);
    if (eligible?.status === 'False' && eligible.reason !== 'Cordoned' && eligible.reason !== 'NotPresent') {
      summary = `is in no pool: ${reasonText(ELIGIBLE_REASONS, eligible.reason)?.short ?? eligible.reason}`;
      reasons.push(`It is not eligible: ${sentence(reasonText(ELIGIBLE_REASONS, eligible.reason), eligible)}`);
      const adoptable = ['HasFilesystem', 'HasPartitions'].includes(eligible.reason);
      const adopters = snap.pools.filter(
        (p) => p.spec.disks.allowAdoption && !selectionProblem(withDefaults(p) as StoragePool, disk, nodeOf(snap, disk), true),
      );
      if (adoptable && adopters.length > 0)
        reasons.push(
          `Pool(s) ${adopters.map((p) => p.metadata.name).join(', ')} allow adoption and select it: they claim it on their next reconcile.`,
        );
    } else if (eligible?.status === 'True' || eligible?.reason === 'Cordoned') {
      summary = disk.spec.schedulable === false ? 'is in no pool: cordoned' : 'is in no pool: eligible, but no pool selects it';
      if (disk.spec.schedulable !== false) reasons.push(...whyNoPoolSelects(disk, snap));
    } else if (eligible?.reason === 'NotPresent' || present?.status === 'False') {
      summary = 'is in no pool: not attached';
    } else {
      summary = 'is in no pool: the node agent has not said whether it is eligible';
    }
  }
  return { subject: `NodeDisk ${name} (${where})`, summary: `${name} ${summary}`, reasons, events: formatEvents(events) };
}

function nodeOf(snap: Snapshot, disk: Disk): Node | undefined {
  // Without the right to list nodes, assume the disk's node exists (the agent on it reported it).
  return (
    snap.nodes.find((n) => n.metadata.name === disk.spec.nodeName) ??
    (snap.nodes.length === 0 ? { metadata: { name: disk.spec.nodeName, labels: {} } } : undefined)
  );
}

function whyNoPoolSelects(disk: Disk, snap: Snapshot): string[] {
  if (snap.pools.length === 0) {
    return [`No StoragePool exists. Create one whose disks.selector matches the disk's labels (${labelsOf(disk)}).`];
  }
  return snap.pools.map((p) => {
    const problem = selectionProblem(withDefaults(p), disk, nodeOf(snap, disk), false);
    return problem
      ? `Pool ${p.metadata.name} does not select it: ${problem}.`
      : `Pool ${p.metadata.name} selects it and should claim it on its next reconcile (is the operator running?).`;
  });
}

const labelsOf = (disk: Disk): string =>
  Object.entries(disk.metadata.labels ?? {})
    .filter(([k]) => k.startsWith('stowage.dev/'))
    .map(([k, v]) => `${k}=${v}`)
    .join(', ') || 'none';

function volumeChain(disk: Disk, snap: Snapshot): string[] {
  const claim = disk.spec.claim!;
  if (claim.mode === 'Dynamic') {
    const vols = snap.poolVolumes.filter((v) => v.spec.pool === claim.pool && v.spec.node === disk.spec.nodeName);
    return [
      vols.length === 0
        ? `Pool ${claim.pool}'s filesystem on ${disk.spec.nodeName} holds no volume.`
        : `Pool ${claim.pool}'s filesystem on ${disk.spec.nodeName}, which spans this disk, holds ${vols.length} volume(s): ${vols
            .slice(0, 5)
            .map((v) => v.metadata.name)
            .join(', ')}${vols.length > 5 ? ', …' : ''}.`,
    ];
  }
  const pv = snap.pvs.find((p) => p.metadata.name === persistentVolumeName(disk.metadata.name));
  if (!pv)
    return [
      `It has no PersistentVolume${findCondition(disk.status?.conditions, 'Prepared')?.status === 'True' ? ' yet; the operator creates one for each prepared disk' : ''}.`,
    ];
  const phase = pv.status?.phase ?? 'Pending';
  const ref = pv.spec.claimRef;
  if (phase === 'Bound' && ref) {
    const pods = (podsByClaim(snap.pods).get(`${ref.namespace}/${ref.name}`) ?? []).map(
      (p) => `${p.metadata.namespace}/${p.metadata.name}${p.spec.nodeName ? '' : ' (not scheduled)'}`,
    );
    return [
      `Its volume ${pv.metadata.name} is bound to claim ${ref.namespace}/${ref.name}${pods.length ? `, used by pod(s) ${pods.join(', ')}` : ', which no pod uses right now'}.`,
    ];
  }
  if (phase === 'Released')
    return [
      `Its volume ${pv.metadata.name} is Released (its claim was deleted)${pv.spec.persistentVolumeReclaimPolicy === 'Retain' ? ' and retained: delete the PV to free the disk' : '; the node agent wipes it, then a fresh volume appears'}.`,
    ];
  return [`Its volume ${pv.metadata.name} is ${phase}: free for a claim of StorageClass ${pv.spec.storageClassName ?? '?'}.`];
}

// ---- pools ---------------------------------------------------------------------------------

export function explainPool(pool: Pool, snap: Snapshot, events: readonly KubeEvent[]): Explanation {
  const name = pool.metadata.name;
  const st = pool.status ?? {};
  const reasons: string[] = [];
  const ready = findCondition(st.conditions, 'Ready');
  let summary: string;
  if (!st.conditions) {
    summary = `${name} has no status yet`;
    reasons.push(
      'The operator has not reported on this pool: is it running? (`kubectl -n stowage-system get deployment stowage-operator`)',
    );
  } else {
    summary =
      ready?.status === 'True'
        ? `${name} is Ready`
        : `${name} is not Ready${ready ? `: ${reasonText(POOL_REASONS, ready.reason)?.short ?? ready.reason}` : ''}`;
    if (st.observedGeneration !== undefined && pool.metadata.generation !== undefined && st.observedGeneration < pool.metadata.generation) {
      reasons.push(
        `The operator has not processed the latest spec yet (generation ${pool.metadata.generation}, status is of ${st.observedGeneration}); if this lasts, check that it runs.`,
      );
    }
    if (pool.metadata.deletionTimestamp) reasons.push(`The pool is being deleted (since ${pool.metadata.deletionTimestamp}).`);
    const said = new Set<string>();
    for (const type of POOL_CONDITIONS) {
      const c = findCondition(st.conditions, type);
      if (!c || said.has(c.reason)) continue; // NoDisks shows on Ready and DisksHealthy: once is enough
      said.add(c.reason);
      if (c.status !== 'True') reasons.push(sentence(reasonText(POOL_REASONS, c.reason), c));
      else if (type === 'Ready') reasons.push(`Ready: ${c.message}.`);
    }
    if (ready?.reason === 'NoDisks' || ready?.reason === 'DisksClaimedByOtherPools' || ready?.reason === 'ReplicationNotSatisfiable')
      reasons.push(...whyNoDisks(pool, snap));
    if (ready?.reason === 'Preparing') {
      for (const d of snap.disks.filter((x) => x.spec.claim?.pool === name)) {
        const p = findCondition(d.status?.conditions, 'Prepared');
        if (p?.status !== 'True')
          reasons.push(
            `Disk ${d.metadata.name} on ${d.spec.nodeName}: ${p ? `${reasonText(PREPARED_REASONS, p.reason)?.short ?? p.reason}: ${p.message}` : 'no report from its node agent yet'}.`,
          );
      }
    }
    const unhealthy = snap.disks.filter(
      (d) => d.spec.claim?.pool === name && findCondition(d.status?.conditions, 'Healthy')?.status === 'False',
    );
    for (const d of unhealthy) {
      const h = findCondition(d.status?.conditions, 'Healthy')!;
      reasons.push(
        `Disk ${d.metadata.name} on ${d.spec.nodeName}: ${reasonText(HEALTHY_REASONS, h.reason)?.short ?? h.reason}: ${h.message}.`,
      );
    }
  }
  const domain = pool.spec.replicated?.failureDomain;
  const copies =
    domain === 'host' || domain === 'zone'
      ? `, ${pool.spec.replicated?.size ?? 1} copies on different ${domain === 'host' ? 'nodes' : 'zones'}`
      : '';
  return { subject: `StoragePool ${name} (${pool.spec.mode}${copies})`, summary, reasons, events: formatEvents(events) };
}

/** For a pool without disks: what each disk in the cluster lacks, grouped so a big cluster stays readable. */
function whyNoDisks(pool: Pool, snap: Snapshot): string[] {
  if (snap.disks.length === 0)
    return ['No NodeDisk exists in the cluster: no node agent has reported a disk (is the stowage-node DaemonSet running?).'];
  const defaulted = withDefaults(pool) as StoragePool;
  const groups = new Map<string, string[]>();
  for (const d of snap.disks) {
    const claimedBy = d.spec.claim?.pool;
    const problem = selectionProblem(defaulted, d, nodeOf(snap, d), claimedBy !== undefined);
    const why =
      problem ?? (claimedBy && claimedBy !== pool.metadata.name ? `it belongs to pool ${claimedBy} (the older claim wins)` : undefined);
    if (!why) continue;
    groups.set(why, [...(groups.get(why) ?? []), d.metadata.name]);
  }
  return [...groups].map(
    ([why, names]) => `${names.length} disk(s) ${names.length <= 3 ? `(${names.join(', ')}) ` : ''}are not used because ${why}.`,
  );
}

// ---- claims --------------------------------------------------------------------------------

export function explainClaim(
  pvc: Claim,
  snap: Snapshot,
  events: readonly KubeEvent[],
  podEvents: readonly KubeEvent[],
  driver: DriverState,
): Explanation {
  const key = `${pvc.metadata.namespace}/${pvc.metadata.name}`;
  const className = pvc.spec.storageClassName;
  const phase = pvc.status?.phase ?? 'Pending';
  const reasons: string[] = [];
  const sc = snap.storageClasses.find((s) => s.metadata.name === className);
  const pool = snap.pools.find(
    (p) =>
      (className !== undefined && p.status?.storageClassName === className) ||
      p.metadata.name === sc?.metadata.labels?.[POOL_LABEL] ||
      (sc?.parameters?.pool !== undefined && p.metadata.name === sc.parameters.pool),
  );
  const request = tryParseBytes(pvc.spec.resources?.requests?.storage);
  const subject = `PersistentVolumeClaim ${key} (class ${className ?? '(default)'}, ${request !== undefined ? humanBytes(request) : 'no size'})`;
  const result = (summary: string): Explanation => ({
    subject,
    summary,
    reasons,
    events: formatEvents([...events, ...podEvents].sort((a, b) => eventTime(a).localeCompare(eventTime(b)))),
  });

  if (phase === 'Bound') {
    const pv = snap.pvs.find((p) => p.metadata.name === pvc.spec.volumeName);
    const disk = pv?.metadata.labels?.['stowage.dev/disk'];
    reasons.push(
      `It is bound to ${pvc.spec.volumeName}${pv?.metadata.labels?.[POOL_LABEL] ? ` of pool ${pv.metadata.labels[POOL_LABEL]}` : ''}${disk ? `, on disk ${disk}` : ''}${pv?.metadata.labels?.['stowage.dev/node'] ? ` of node ${pv.metadata.labels['stowage.dev/node']}` : ''}.`,
    );
    return result(`${key} is Bound`);
  }
  if (!className)
    reasons.push("It names no StorageClass and the cluster's default class applies; name a Stowage pool's class in spec.storageClassName.");
  if (!sc && className) {
    // A pool that would publish the class but does not (yet): its Ready condition says why.
    const intended = pool ?? snap.pools.find((p) => (p.spec.storageClass?.name ?? p.metadata.name) === className);
    const intendedReady = findCondition(intended?.status?.conditions, 'Ready');
    if (intended && intendedReady && intendedReady.status !== 'True') {
      reasons.push(
        `StorageClass ${className} does not exist: pool ${intended.metadata.name} would publish it but is not Ready: ${sentence(reasonText(POOL_REASONS, intendedReady.reason), intendedReady)} (\`kubectl stowage why ${intended.metadata.name}\` for the details).`,
      );
      return result(`${key} is ${phase}: its pool publishes no StorageClass`);
    }
    reasons.push(
      `StorageClass ${className} does not exist${pool ? '' : ' and no StoragePool publishes it'}: create a StoragePool (its class is named after it, or spec.storageClass.name), or fix spec.storageClassName.`,
    );
    return result(`${key} is ${phase}: its StorageClass is missing`);
  }
  if (sc && sc.provisioner !== LOCAL_PROVISIONER && sc.provisioner !== CSI_DRIVER_NAME) {
    reasons.push(`StorageClass ${className} is not Stowage's (provisioner ${sc.provisioner}); ask that provisioner.`);
    return result(`${key} is ${phase}: not a Stowage claim`);
  }
  if (!pool) {
    reasons.push(`No StoragePool publishes StorageClass ${className}; the class is left from a deleted pool or made by hand.`);
    return result(`${key} is ${phase}: no pool behind its class`);
  }
  const poolName = pool.metadata.name;
  const poolReady = findCondition(pool.status?.conditions, 'Ready');
  if (poolReady?.status !== 'True') {
    reasons.push(
      `Its pool ${poolName} is not Ready: ${poolReady ? sentence(reasonText(POOL_REASONS, poolReady.reason), poolReady) : 'the operator has not reported on it'} (\`kubectl stowage why ${poolName}\` for the details).`,
    );
  }
  const pods = podsByClaim(snap.pods).get(key) ?? [];
  const selectedNode = pvc.metadata.annotations?.[SELECTED_NODE_ANNOTATION];
  const waitForConsumer = (sc?.volumeBindingMode ?? 'Immediate') === 'WaitForFirstConsumer';
  if (waitForConsumer && !selectedNode) {
    if (pods.length === 0) {
      reasons.push(
        `Its class binds on first use (volumeBindingMode WaitForFirstConsumer) and no pod uses the claim yet: it binds once a pod that mounts it is scheduled. This is normal.`,
      );
      return result(`${key} is Pending: waiting for a pod to use it`);
    }
    for (const pod of pods) {
      const sched = pod.status?.conditions?.find((x) => x.type === 'PodScheduled');
      if (pod.spec.nodeName) continue;
      reasons.push(
        `Pod ${pod.metadata.namespace}/${pod.metadata.name} uses it but is not scheduled${sched?.message ? `: the scheduler says "${sched.message}"` : ' yet'}.`,
      );
    }
  }
  const node = selectedNode ?? pods.find((p) => p.spec.nodeName)?.spec.nodeName;
  if (pool.spec.mode === 'Local') reasons.push(...localCapacity(pool, pvc, snap, request, node));
  else reasons.push(...dynamicReasons(pool, snap, request, node, driver));
  if (reasons.length === 0) reasons.push("Nothing in Stowage's state explains it; the claim's events below may.");
  return result(`${key} is ${phase}`);
}

function localCapacity(pool: Pool, pvc: Claim, snap: Snapshot, request: bigint | undefined, node: string | undefined): string[] {
  const poolName = pool.metadata.name;
  const pvs = snap.pvs.filter((pv) => pv.metadata.labels?.[POOL_LABEL] === poolName);
  const onNode = (pv: PersistentVolume): boolean => !node || pv.metadata.labels?.['stowage.dev/node'] === node;
  const available = pvs.filter((pv) => pv.status?.phase === 'Available' && onNode(pv));
  const modeOk = available.filter((pv) => (pv.spec.volumeMode ?? 'Filesystem') === (pvc.spec.volumeMode ?? 'Filesystem'));
  const where = node ? `on node ${node}` : 'on any node';
  if (available.length === 0) {
    const disks = snap.disks.filter((d) => !node || d.spec.nodeName === node);
    const detail = disks.map((d) => {
      const e = findCondition(d.status?.conditions, 'Eligible');
      const owner = d.spec.claim?.pool;
      const pv = pvs.find((p) => p.metadata.name === persistentVolumeName(d.metadata.name));
      if (owner === poolName && pv?.spec.claimRef?.name)
        return `${d.metadata.name} (in use by ${pv.spec.claimRef.namespace}/${pv.spec.claimRef.name})`;
      if (owner) return `${d.metadata.name} (${owner === poolName ? 'being prepared' : `belongs to pool ${owner}`})`;
      return `${d.metadata.name} (${e ? (reasonText(ELIGIBLE_REASONS, e.reason)?.short ?? e.reason) : 'not inventoried'})`;
    });
    return [
      `No eligible disk ${where}: pool ${poolName} has no Available volume there${detail.length ? `; the disks ${node ? 'of that node' : ''} are: ${detail.join(', ')}` : ''}. Add a blank disk ${node ? 'to that node ' : ''}or free a volume.`,
    ];
  }
  if (modeOk.length === 0)
    return [
      `Pool ${poolName}'s free volumes ${where} are ${available[0].spec.volumeMode ?? 'Filesystem'} volumes, the claim asks volumeMode ${pvc.spec.volumeMode ?? 'Filesystem'}.`,
    ];
  if (request !== undefined) {
    const largest = modeOk.map((pv) => tryParseBytes(pv.spec.capacity?.storage) ?? 0n).reduce((a, b) => (a > b ? a : b), 0n);
    if (largest < request)
      return [
        `Capacity: the largest free volume of pool ${poolName} ${where} has ${humanBytes(largest)}, the claim asks for ${humanBytes(request)}; a Local volume is one whole disk, so add a bigger disk or ask for less.`,
      ];
  }
  return [`Pool ${poolName} has ${modeOk.length} free volume(s) ${where} that fit; the PV controller should bind one shortly.`];
}

function dynamicReasons(pool: Pool, snap: Snapshot, request: bigint | undefined, node: string | undefined, driver: DriverState): string[] {
  const out: string[] = [];
  const poolName = pool.metadata.name;
  if (!driver.csiDriver)
    out.push(
      `The CSI driver is not running: CSIDriver ${CSI_DRIVER_NAME} is not registered. The operator installs it with the first Dynamic pool; check that the operator runs.`,
    );
  const controller = driver.controller;
  if (!controller)
    out.push(
      'The CSI driver is not running: Deployment stowage-csi-controller does not exist (the operator creates it with the first Dynamic pool).',
    );
  else if ((controller.status?.readyReplicas ?? 0) < 1)
    out.push(
      `The CSI driver is not running: Deployment ${controller.metadata.namespace}/stowage-csi-controller has no ready replica; \`kubectl -n ${controller.metadata.namespace} describe deployment stowage-csi-controller\` says why.`,
    );
  const daemon = driver.nodeDaemon;
  if (daemon && (daemon.status?.numberReady ?? 0) < (daemon.status?.desiredNumberScheduled ?? 0)) {
    out.push(
      `Only ${daemon.status?.numberReady ?? 0} of ${daemon.status?.desiredNumberScheduled} stowage-node pods are ready; volumes on the other nodes cannot be created.`,
    );
  }
  const repl = findCondition(pool.status?.conditions, 'ReplicationSatisfiable');
  if (repl?.status === 'False') out.push(sentence(reasonText(POOL_REASONS, repl.reason), repl));
  const nodeDisks = snap.disks.filter((d) => d.spec.claim?.pool === poolName && (!node || d.spec.nodeName === node));
  if (node && nodeDisks.length === 0) out.push(`No eligible disk on node ${node}: pool ${poolName} holds no disk there.`);
  const available = tryParseBytes(pool.status?.capacity?.available);
  if (request !== undefined && available !== undefined && available < request) {
    out.push(
      `Capacity: pool ${poolName} has ${humanBytes(available)} available, the claim asks for ${humanBytes(request)}; add disks to the pool or ask for less.`,
    );
  }
  const cap = findCondition(pool.status?.conditions, 'CapacityAvailable');
  if (cap?.status === 'False' && cap.reason === 'NoCapacity') out.push(sentence(POOL_REASONS.NoCapacity, cap));
  return out;
}

// ---- text ----------------------------------------------------------------------------------

export function renderExplanation(e: Explanation): string {
  const lines = [e.subject, `  ${e.summary}.`];
  if (e.reasons.length > 0) {
    lines.push('', 'Why:');
    for (const r of e.reasons) lines.push(`  - ${r}`);
  }
  if (e.events.length > 0) {
    lines.push('', 'Recent events:');
    for (const ev of e.events) lines.push(`  ${ev}`);
  }
  return `${lines.join('\n')}\n`;
}

export type { StorageClass };
