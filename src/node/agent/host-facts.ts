/**
 * Parsers for what the host tells about its block devices: `lsblk --json --bytes`,
 * `blkid -p -o export`, `wipefs -n --json` and /proc/self/mountinfo. Pure: they take the tools'
 * text and return plain data, so they are tested on captured output and the shell stays thin.
 */

/** lsblk columns the agent asks for (lsblk prints JSON keys in lower case). */
export const LSBLK_COLUMNS = 'NAME,KNAME,PATH,TYPE,SIZE,RO,RM,ROTA,MODEL,VENDOR,SERIAL,WWN,TRAN,PKNAME,MAJ:MIN,FSTYPE,LABEL';

export interface RawPartition {
  readonly kname: string;
  readonly majMin: string;
  readonly sizeBytes: bigint;
  readonly number?: number;
  readonly fsType?: string;
  readonly label?: string;
}

/** One whole block device as lsblk (and sysfs) describe it. */
export interface RawDisk {
  readonly kname: string;
  /** `/dev/<kname>` */
  readonly path: string;
  readonly majMin: string;
  /** lsblk TYPE: disk, loop, rom, … */
  readonly type: string;
  readonly sizeBytes: bigint;
  readonly readOnly: boolean;
  readonly removable: boolean;
  readonly rotational: boolean;
  readonly model?: string;
  readonly vendor?: string;
  readonly serial?: string;
  readonly wwn?: string;
  readonly transport?: string;
  readonly partitions: readonly RawPartition[];
}

/** Signatures found on a device: the filesystem or partition table blkid reports, and every type wipefs lists. */
export interface Signatures {
  readonly fsType?: string;
  readonly uuid?: string;
  readonly label?: string;
  readonly ptType?: string;
  readonly ptUuid?: string;
  /** Every signature type (ext4, gpt, PMBR, LVM2_member, …); empty means blank. */
  readonly types: readonly string[];
  /** blkid could not decide (several signatures); the device is certainly not blank. */
  readonly ambivalent?: boolean;
}

export interface MountEntry {
  readonly majMin: string;
  readonly target: string;
  readonly fsType: string;
  readonly source: string;
}

const text = (v: unknown): string | undefined => {
  if (typeof v !== 'string') return undefined;
  const t = v.trim();
  return t === '' ? undefined : t;
};
const flag = (v: unknown): boolean => v === true || v === '1' || v === 1;
const bytes = (v: unknown): bigint => (typeof v === 'number' || (typeof v === 'string' && /^\d+$/.test(v)) ? BigInt(v) : 0n);

/** Whole devices (with their partitions) from `lsblk --json --bytes -o LSBLK_COLUMNS`. */
export function parseLsblk(json: string): RawDisk[] {
  const doc = JSON.parse(json) as { blockdevices?: Array<Record<string, unknown>> };
  const disks: RawDisk[] = [];
  for (const dev of doc.blockdevices ?? []) {
    const kname = text(dev.kname) ?? text(dev.name);
    if (!kname) continue;
    const children = (dev.children as Array<Record<string, unknown>> | undefined) ?? [];
    const partitions: RawPartition[] = children
      .filter((c) => text(c.type) === 'part')
      .map((c) => {
        const pk = text(c.kname) ?? text(c.name) ?? '';
        const num = /(\d+)$/.exec(pk);
        const fsType = text(c.fstype);
        const label = text(c.label);
        return {
          kname: pk,
          majMin: text(c['maj:min']) ?? '',
          sizeBytes: bytes(c.size),
          ...(num ? { number: Number(num[1]) } : {}),
          ...(fsType ? { fsType } : {}),
          ...(label ? { label } : {}),
        };
      });
    const opt = (key: string, value: string | undefined): Record<string, string> => (value ? { [key]: value } : {});
    disks.push({
      kname,
      path: text(dev.path) ?? `/dev/${kname}`,
      majMin: text(dev['maj:min']) ?? '',
      type: text(dev.type) ?? 'disk',
      sizeBytes: bytes(dev.size),
      readOnly: flag(dev.ro),
      removable: flag(dev.rm),
      rotational: flag(dev.rota),
      ...opt('model', text(dev.model)),
      ...opt('vendor', text(dev.vendor)),
      ...opt('serial', text(dev.serial)),
      ...opt('wwn', text(dev.wwn)),
      ...opt('transport', text(dev.tran)),
      partitions,
    });
  }
  return disks;
}

/** `blkid -p -o export DEV...` → signature details per device path (devices without any are absent). */
export function parseBlkidExport(out: string): Map<string, Omit<Signatures, 'types'>> {
  const result = new Map<string, Omit<Signatures, 'types'>>();
  for (const block of out.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of block.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) fields.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
    }
    const dev = fields.get('DEVNAME');
    if (!dev) continue;
    const sig: Record<string, string> = {};
    if (fields.get('TYPE')) sig.fsType = fields.get('TYPE')!;
    if (fields.get('UUID')) sig.uuid = fields.get('UUID')!;
    if (fields.get('LABEL')) sig.label = fields.get('LABEL')!;
    if (fields.get('PTTYPE')) sig.ptType = fields.get('PTTYPE')!;
    if (fields.get('PTUUID')) sig.ptUuid = fields.get('PTUUID')!;
    result.set(dev, sig);
  }
  return result;
}

/** `wipefs -n --json DEV...` → every signature type per kernel name (`loop3` → [ext4]). */
export function parseWipefs(json: string): Map<string, string[]> {
  const result = new Map<string, string[]>();
  if (json.trim() === '') return result;
  const doc = JSON.parse(json) as { signatures?: Array<{ device?: string; type?: string }> };
  for (const sig of doc.signatures ?? []) {
    if (!sig.device || !sig.type) continue;
    const name = sig.device.replace(/^\/dev\//, '');
    result.set(name, [...(result.get(name) ?? []), sig.type]);
  }
  return result;
}

/** /proc/self/mountinfo → mounts (octal escapes such as \040 decoded). */
export function parseMountinfo(content: string): MountEntry[] {
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
  const mounts: MountEntry[] = [];
  for (const line of content.split('\n')) {
    if (line.trim() === '') continue;
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const l = left.split(' ');
    const r = right.split(' ');
    mounts.push({ majMin: l[2] ?? '', target: unescape(l[4] ?? ''), fsType: r[0] ?? '', source: unescape(r[1] ?? '') });
  }
  return mounts;
}
