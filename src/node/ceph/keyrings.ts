/**
 * CephX keys and keyrings. A key is made by `ceph-authtool --gen-print-key` (Ceph's own format:
 * base64 of a 16-byte secret with its header); a keyring file is rendered from keys, so keys can
 * live elsewhere (the operator's Secrets) and be written to a daemon's data dir at start.
 */
import { run } from '../../host/command.js';

/** Capabilities of one entity, e.g. `{ mon: 'allow *' }`, keyed by service. */
export type CephCaps = Readonly<Partial<Record<'mon' | 'mgr' | 'osd' | 'mds', string>>>;

export interface KeyringEntry {
  /** `mon.`, `client.admin`, `mgr.x`, `osd.3`. */
  readonly entity: string;
  readonly key: string;
  readonly caps?: CephCaps;
}

/** Caps of the cluster's administrator key. */
export const ADMIN_CAPS: CephCaps = { mon: 'allow *', mgr: 'allow *', osd: 'allow *', mds: 'allow *' };
/** Caps of the monitors' shared key. */
export const MON_CAPS: CephCaps = { mon: 'allow *' };
/** Caps of a manager, as Ceph's own deployment tools give it. */
export const MGR_CAPS: CephCaps = { mon: 'allow profile mgr', osd: 'allow *', mds: 'allow *' };

// base64 of the 28-byte CephX secret blob.
const CEPHX_KEY = /^[A-Za-z0-9+/]{38}==$/;
const ENTITY = /^(mon\.|client\.[A-Za-z0-9_.-]+|(mgr|mds)\.[A-Za-z0-9_.-]+|osd\.\d+)$/;

/** A keyring file in ceph-authtool's own layout (caps sorted by service, tab-indented). */
export function renderKeyring(entries: readonly KeyringEntry[]): string {
  return entries
    .map((e) => {
      if (!ENTITY.test(e.entity))
        throw new Error(`${JSON.stringify(e.entity)} is not a Ceph entity name (mon., client.NAME, mgr.ID, mds.ID, osd.N)`);
      if (!CEPHX_KEY.test(e.key))
        throw new Error(`the key for ${e.entity} is not a CephX key; make one with ceph-authtool --gen-print-key`);
      const caps = Object.entries(e.caps ?? {}).sort(([a], [b]) => a.localeCompare(b));
      return (
        [`[${e.entity}]`, `\tkey = ${e.key}`, ...caps.map(([svc, cap]) => `\tcaps ${svc} = "${cap.replace(/"/g, '\\"')}"`)].join('\n') +
        '\n'
      );
    })
    .join('');
}

/** A new random CephX key. */
export async function generateKey(): Promise<string> {
  const key = (await run('ceph-authtool', ['--gen-print-key'])).trim();
  if (!CEPHX_KEY.test(key)) throw new Error(`ceph-authtool --gen-print-key printed ${JSON.stringify(key.slice(0, 60))}, not a CephX key`);
  return key;
}
