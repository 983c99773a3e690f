/**
 * What the agent keeps on the host about every disk it handed to a pool, so that a disk whose
 * NodeDisk was deleted (the dead-disk runbook) and that comes back is recognised as one that held a
 * tenant's data — even when nothing on the disk says so: a raw Block tenant can overwrite every byte
 * of the device, Stowage's filesystem label included, and raw data without a signature looks blank.
 *
 * One small JSON file per disk in `<root>/.handed-out/`, named by a hash of the disk's stable
 * identity (WWN + serial, serial, or a loop device's backing file: the same under any kernel name).
 * It is written BEFORE the disk is prepared (so before any PV is offered on it), and removed only
 * when the disk is released through the claim protocol (its volumes were wiped or never bound) or
 * after an administrator asked for the erase of a held disk and it finished. The directory is
 * removed when it empties, so an uninstall leaves nothing under the agent's root.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { errorMessage, isNotFound } from '../../util/errors.js';
import { logger } from '../../util/logger.js';

export const RECORDS_DIR = '.handed-out';

const log = logger('handout-records');

export interface HandoutRecord {
  /** The disk's identity (the NodeDisk's stowage.dev/identity annotation). */
  readonly identity: string;
  /** The NodeDisk the disk was handed out under. */
  readonly nodeDisk: string;
  /** Its metadata.uid: a NodeDisk of the same name with another UID is a new object (the old one was deleted). */
  readonly nodeDiskUID: string;
  readonly pool: string;
  readonly volumeMode: 'Filesystem' | 'Block';
  /** RFC 3339: when it was handed out. */
  readonly since: string;
  /**
   * Set once the disk was seen again without the NodeDisk it was handed out under: from then on it is
   * held (never offered) until an administrator asks for its erase (NodeDisk spec.erasePreviousData).
   */
  readonly heldSince?: string;
}

export class HandoutRecords {
  private readonly dir: string;
  /** Read once from the host, then kept in step with every write. */
  private cache?: Map<string, HandoutRecord>;

  constructor(root: string) {
    this.dir = path.join(root, RECORDS_DIR);
  }

  static fileName(identity: string): string {
    return `${createHash('sha256').update(identity).digest('hex').slice(0, 32)}.json`;
  }

  async get(identity: string): Promise<HandoutRecord | undefined> {
    return (await this.load()).get(identity);
  }

  /** Writes (or replaces) the record durably: a temporary file renamed into place. */
  async put(record: HandoutRecord): Promise<void> {
    const records = await this.load();
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const file = path.join(this.dir, HandoutRecords.fileName(record.identity));
    await writeFile(`${file}.tmp`, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
    await rename(`${file}.tmp`, file);
    records.set(record.identity, record);
  }

  async remove(identity: string): Promise<void> {
    const records = await this.load();
    await rm(path.join(this.dir, HandoutRecords.fileName(identity)), { force: true });
    records.delete(identity);
    if (records.size === 0) {
      await rmdir(this.dir).catch((err: unknown) => {
        // The empty directory is only tidiness (an uninstall leaves nothing behind); the record itself
        // is gone, so the release goes on. Already gone is fine; anything else (a stray file left in
        // it, an I/O error) is worth a line in the log.
        if (!isNotFound(err))
          log.warn({ dir: this.dir, err: errorMessage(err) }, 'could not remove the empty hand-out records directory; it stays');
      });
    }
  }

  private async load(): Promise<Map<string, HandoutRecord>> {
    if (this.cache) return this.cache;
    const records = new Map<string, HandoutRecord>();
    const names = await readdir(this.dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw err;
    });
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      const text = await readFile(path.join(this.dir, name), 'utf8');
      let record: HandoutRecord;
      try {
        record = JSON.parse(text) as HandoutRecord;
      } catch (err) {
        // A record the agent cannot read must not be taken as "never handed out": that is the unsafe answer.
        throw new Error(
          `cannot read the hand-out record ${path.join(this.dir, name)} (${(err as Error).message}); fix or remove it by hand after checking which disk it names`,
          { cause: err },
        );
      }
      if (typeof record.identity === 'string') records.set(record.identity, record);
    }
    this.cache = records;
    return records;
  }
}
