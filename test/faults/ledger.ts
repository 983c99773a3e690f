/**
 * The fault suite's ledger (issues 18 and 25). A fault is something done to a running Stowage while
 * it holds data: a process killed, a server stopped, a disk pulled, a hostile object or request that
 * reaches Stowage's code. Set-up and checks are not faults and never go through here.
 *
 * Every fault goes through {@link FaultLedger.inject} with a {@link FaultPlan} that says what is
 * checked after the fault and its recovery, the same three things for every row:
 * - **bytes lost**: the data written *before* the fault (frozen when the fault starts), read back;
 *   or, where no data can be at stake, "n/a" and why. A data check that reads nothing fails the
 *   fault: a row cannot claim 0 bytes lost over 0 bytes checked.
 * - **objects leaked**: an inventory (API objects Stowage owns, mounts, loop devices, subvolumes,
 *   processes) taken when the fault starts and again after; what appeared and was not meant to is
 *   leaked, counted by kind; what vanished and was not meant to fails the fault.
 * - **survived**: the body passed (the answer a user would see) and every survival check (the
 *   processes up, the pool and disks at the expected conditions) found nothing wrong.
 * Anything else fails the test at once. The root hook (test/support/global-hooks.ts) prints the
 * table at the end of the run, and fails the run if any row leaked or lost.
 *
 * Schema rejections (a hostile spec the API server refuses with the CRD's own schema, before Stowage
 * sees it) are not faults: they are counted apart, with {@link FaultLedger.schemaRejection}, and
 * printed on a separate line.
 */

import { errorMessage } from '../../src/util/errors.js';

/** One kind of thing a fault could leave behind, listed by id (e.g. "PersistentVolume", names). */
export interface InventoryProbe {
  readonly kind: string;
  list(): Promise<string[]> | string[];
}

/** Data written before the fault: {@link freeze} is called when the fault starts. */
export interface DataAtStake {
  freeze(): FrozenData;
}

export interface FrozenData {
  /** Reads every piece back; `checked` counts the bytes compared, `lost` those that differ or vanished. */
  readBack(): Promise<{ checked: number; lost: number; notes: string[] }>;
}

/** Where no data can be at stake, why (printed in the table's notes). */
export interface NoDataAtStake {
  readonly na: string;
}

/** A check that the fault was survived: one line for each thing that is not as it must be. */
export type SurvivalCheck = () => Promise<string[]> | string[];

/** Ids, or a test of an id (a mount at a given target, whatever its source). */
export type IdMatch = readonly string[] | ((id: string) => boolean);

/** What the fault's own body is meant to change, by kind: ids that may appear or vanish. */
export interface ExpectedChanges {
  readonly appear?: Record<string, IdMatch>;
  readonly vanish?: Record<string, IdMatch>;
}

const matcher = (m: IdMatch | undefined): ((id: string) => boolean) => (typeof m === 'function' ? m : (id) => (m ?? []).includes(id));

export interface FaultPlan {
  readonly data: DataAtStake | NoDataAtStake;
  readonly inventory: readonly InventoryProbe[];
  readonly survival: readonly SurvivalCheck[];
  /** Asked after the body ran (ids the body made are known then). */
  readonly changes?: () => ExpectedChanges | Promise<ExpectedChanges>;
}

export interface LedgerRow {
  readonly area: string;
  injected: number;
  survived: number;
  /** Things left behind, by kind. */
  readonly leaked: Map<string, number>;
  bytesChecked: number;
  bytesLost: number;
  /** Faults whose data check was "n/a", and why (distinct reasons). */
  notApplicable: number;
  readonly naReasons: Set<string>;
  /** What went wrong, for the summary (first few only). */
  readonly notes: string[];
}

export interface SchemaRejections {
  count: number;
  readonly byKind: Map<string, number>;
}

const MAX_NOTES = 5;

const isNa = (d: DataAtStake | NoDataAtStake): d is NoDataAtStake => typeof (d as NoDataAtStake).na === 'string';

async function listAll(probes: readonly InventoryProbe[]): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  for (const p of probes) {
    const set = out.get(p.kind) ?? new Set<string>();
    for (const id of await p.list()) set.add(id);
    out.set(p.kind, set);
  }
  return out;
}

/** The counts of one run; the suite shares {@link ledger}, the ledger's own test makes its own. */
export class FaultLedger {
  private readonly rows = new Map<string, LedgerRow>();
  readonly schema: SchemaRejections = { count: 0, byKind: new Map() };

  private rowOf(area: string): LedgerRow {
    let row = this.rows.get(area);
    if (!row) {
      row = {
        area,
        injected: 0,
        survived: 0,
        leaked: new Map(),
        bytesChecked: 0,
        bytesLost: 0,
        notApplicable: 0,
        naReasons: new Set(),
        notes: [],
      };
      this.rows.set(area, row);
    }
    return row;
  }

  /**
   * Injects one fault: takes the inventory and freezes the data at stake, counts the fault, runs
   * `body`, then reads the data back, compares the inventory and runs the survival checks; records
   * the outcome and throws (failing the test) when the body failed, a survival check found
   * something, anything leaked or vanished, or a byte was lost.
   */
  async inject<T>(area: string, fault: string, plan: FaultPlan, body: () => Promise<T>): Promise<T> {
    if (!isNa(plan.data) && typeof plan.data.freeze !== 'function') throw new Error(`fault "${fault}": data is neither checked nor n/a`);
    if (plan.inventory.length === 0) throw new Error(`fault "${fault}": no inventory to compare, so "objects leaked" would count nothing`);
    if (plan.survival.length === 0) throw new Error(`fault "${fault}": no survival check`);
    const row = this.rowOf(area);
    const before = await listAll(plan.inventory);
    const frozen = isNa(plan.data) ? undefined : plan.data.freeze();
    row.injected++;
    let result: T | undefined;
    let failure: unknown;
    try {
      result = await body();
    } catch (err) {
      failure = err;
    }
    const problems: string[] = failure !== undefined ? [`not survived: ${errorMessage(failure)}`] : [];
    // Bytes first: recovery steps the survival checks wait for must not stand between the fault and the read-back.
    if (frozen) {
      try {
        const r = await frozen.readBack();
        row.bytesChecked += r.checked;
        row.bytesLost += r.lost;
        if (r.checked === 0) problems.push('the data check read 0 bytes: write data before the fault, or say why none is at stake (n/a)');
        if (r.lost > 0) problems.push(`lost ${r.lost} of ${r.checked} bytes: ${r.notes.join('; ')}`);
      } catch (err) {
        problems.push(`the data check failed: ${String(err)}`);
      }
    } else {
      row.notApplicable++;
      row.naReasons.add((plan.data as NoDataAtStake).na);
    }
    for (const check of plan.survival) {
      try {
        problems.push(...(await check()).map((p) => `not survived: ${p}`));
      } catch (err) {
        problems.push(`not survived: the survival check failed: ${String(err)}`);
      }
    }
    try {
      const after = await listAll(plan.inventory);
      const changes = (await plan.changes?.()) ?? {};
      for (const [kind, now] of after) {
        const was = before.get(kind) ?? new Set<string>();
        const mayAppear = matcher(changes.appear?.[kind]);
        const mayVanish = matcher(changes.vanish?.[kind]);
        const leaked = [...now].filter((id) => !was.has(id) && !mayAppear(id));
        const vanished = [...was].filter((id) => !now.has(id) && !mayVanish(id));
        if (leaked.length > 0) {
          row.leaked.set(kind, (row.leaked.get(kind) ?? 0) + leaked.length);
          problems.push(`leaked ${leaked.length} ${kind}: ${leaked.join(', ')}`);
        }
        if (vanished.length > 0) problems.push(`not survived: ${kind} vanished: ${vanished.join(', ')}`);
      }
    } catch (err) {
      problems.push(`the inventory failed: ${String(err)}`);
    }
    if (problems.length === 0) {
      row.survived++;
      return result as T;
    }
    if (row.notes.length < MAX_NOTES) row.notes.push(`${fault}: ${problems[0].split('\n')[0]}`);
    throw new Error(`fault "${fault}" (${area}):\n  ${problems.join('\n  ')}`);
  }

  /** Counts one hostile spec the API server's schema rejected (not a fault: Stowage never saw it). */
  schemaRejection(kind: string): void {
    this.schema.count++;
    this.schema.byKind.set(kind, (this.schema.byKind.get(kind) ?? 0) + 1);
  }

  rowList(): LedgerRow[] {
    return [...this.rows.values()];
  }

  /** The table and what leaked or was lost, or undefined when no fault ran and nothing was rejected. */
  summary(): { table: string; problems: string[] } | undefined {
    const all = this.rowList();
    if (all.length === 0 && this.schema.count === 0) return undefined;
    const problems = all
      .filter((r) => sumOf(r.leaked) > 0 || r.bytesLost > 0 || r.survived < r.injected)
      .map(
        (r) =>
          `${r.area}: ${r.injected - r.survived} not survived, ${leakedText(r.leaked)} leaked, ${r.bytesLost} bytes lost (${r.notes.join(' | ')})`,
      );
    return { table: ledgerTable(all, this.schema), problems };
  }
}

const sumOf = (m: ReadonlyMap<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);

/** "0", or "2 (1 PersistentVolume, 1 mount)". */
export function leakedText(m: ReadonlyMap<string, number>): string {
  const total = sumOf(m);
  if (total === 0) return '0';
  return `${total} (${[...m]
    .filter(([, n]) => n > 0)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, n]) => `${n} ${k}`)
    .join(', ')})`;
}

/** Bytes in binary units, exact below 1 KiB. */
export function bytesText(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${Number(v.toFixed(1))} ${units[u]}`;
}

/** The suite's ledger, printed by the root hook. */
export const ledger = new FaultLedger();

/** {@link FaultLedger.inject} on the suite's ledger. */
export function injectFault<T>(area: string, fault: string, plan: FaultPlan, body: () => Promise<T>): Promise<T> {
  return ledger.inject(area, fault, plan, body);
}

/** {@link FaultLedger.schemaRejection} on the suite's ledger. */
export function countSchemaRejection(kind: string): void {
  ledger.schemaRejection(kind);
}

/**
 * The table the root hook prints (markdown, so it can go into docs/faults.md as it is): one row per
 * area, the total, the schema rejections on a line of their own, then why data was n/a.
 */
export function ledgerTable(all: readonly LedgerRow[], schema: SchemaRejections = { count: 0, byKind: new Map() }): string {
  const leakedTotal = new Map<string, number>();
  for (const r of all) for (const [k, n] of r.leaked) leakedTotal.set(k, (leakedTotal.get(k) ?? 0) + n);
  const total = {
    injected: all.reduce((t, r) => t + r.injected, 0),
    survived: all.reduce((t, r) => t + r.survived, 0),
    bytesChecked: all.reduce((t, r) => t + r.bytesChecked, 0),
    bytesLost: all.reduce((t, r) => t + r.bytesLost, 0),
    notApplicable: all.reduce((t, r) => t + r.notApplicable, 0),
  };
  const checkedText = (r: { injected: number; bytesChecked: number; notApplicable: number }): string => {
    const withData = r.injected - r.notApplicable;
    if (withData === 0) return 'n/a';
    return `${bytesText(r.bytesChecked)} in ${withData} of ${r.injected}${r.notApplicable > 0 ? ` (${r.notApplicable} n/a)` : ''}`;
  };
  const lostText = (r: { injected: number; bytesLost: number; notApplicable: number }): string =>
    r.injected === r.notApplicable ? 'n/a' : String(r.bytesLost);
  const line = (
    name: string,
    r: { injected: number; survived: number; bytesChecked: number; bytesLost: number; notApplicable: number },
    leaked: ReadonlyMap<string, number>,
  ) => `| ${name} | ${r.injected} | ${r.survived} | ${leakedText(leaked)} | ${checkedText(r)} | ${lostText(r)} |`;
  const reasons = all.filter((r) => r.naReasons.size > 0).map((r) => `- ${r.area}: ${[...r.naReasons].join('; ')}`);
  const byKind = [...schema.byKind]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, n]) => `${n} ${k}`)
    .join(', ');
  return [
    '| fault area | faults injected | survived | objects leaked (by kind) | bytes checked | bytes lost |',
    '| --- | ---: | ---: | --- | --- | ---: |',
    ...all.map((r) => line(r.area, r, r.leaked)),
    line('**total**', total, leakedTotal),
    '',
    `Schema rejections (not faults: refused by the API server with the CRD's schema before Stowage saw them, each checked for status 422 and the field path): ${schema.count}${byKind ? ` (${byKind})` : ''}.`,
    ...(reasons.length > 0 ? ['', 'Bytes n/a (no data could be at stake), why:', ...reasons] : []),
  ].join('\n');
}

/** Called by the root hook: the table when any fault ran, and what leaked or was lost. */
export function ledgerSummary(): { table: string; problems: string[] } | undefined {
  return ledger.summary();
}
