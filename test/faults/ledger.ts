/**
 * The fault suite's ledger (issue 18). Every fault test injects its faults through {@link injectFault}:
 * the fault is counted as injected, the body runs (it makes the fault happen and checks the answer
 * a user would see), then the fault's guards say what it leaked (objects, mounts, loop devices,
 * processes that died) and how many bytes it lost (sentinel data changed, checksums that differ).
 * A fault survived when the body passed and nothing leaked or was lost; anything else fails the
 * test at once. The root hook (test/support/global-hooks.ts) prints the table at the end of the run
 * and fails the run if any row leaked or lost.
 *
 * Later parts (crash at every step, API server away, disks that fail, churn) plug in by calling
 * injectFault with their own area name and guards (see guards.ts for the host ones).
 */

/** What a fault may leave behind; each guard is asked after the fault's body ran. */
export interface FaultGuard {
  /** Things that should not exist any more (or should still exist): one line each, empty when clean. */
  leaks?(): Promise<string[]> | string[];
  /** Bytes of data that changed or vanished where nothing should have been touched. */
  lostBytes?(): Promise<number> | number;
}

export interface LedgerRow {
  readonly area: string;
  injected: number;
  survived: number;
  leaked: number;
  lostBytes: number;
  /** What went wrong, for the summary (first few only). */
  readonly notes: string[];
}

const MAX_NOTES = 5;

/** The counts of one run; the suite shares {@link ledger}, the ledger's own test makes its own. */
export class FaultLedger {
  private readonly rows = new Map<string, LedgerRow>();

  private rowOf(area: string): LedgerRow {
    let row = this.rows.get(area);
    if (!row) {
      row = { area, injected: 0, survived: 0, leaked: 0, lostBytes: 0, notes: [] };
      this.rows.set(area, row);
    }
    return row;
  }

  /**
   * Injects one fault: counts it, runs `body`, asks every guard, records the outcome, and throws
   * (failing the test) when the body failed or anything leaked or was lost.
   */
  async inject<T>(area: string, fault: string, body: () => Promise<T>, guards: readonly FaultGuard[] = []): Promise<T> {
    const row = this.rowOf(area);
    row.injected++;
    let result: T | undefined;
    let failure: unknown;
    try {
      result = await body();
    } catch (err) {
      failure = err;
    }
    const leaked: string[] = [];
    let lost = 0;
    for (const g of guards) {
      try {
        if (g.leaks) leaked.push(...(await g.leaks()));
        if (g.lostBytes) lost += await g.lostBytes();
      } catch (err) {
        leaked.push(`guard failed: ${String(err)}`);
      }
    }
    row.leaked += leaked.length;
    row.lostBytes += lost;
    if (failure === undefined && leaked.length === 0 && lost === 0) {
      row.survived++;
      return result as T;
    }
    const why = [
      // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a thrown non-Error is shown as it comes
      ...(failure !== undefined ? [`not survived: ${failure instanceof Error ? failure.message : String(failure)}`] : []),
      ...(leaked.length > 0 ? [`leaked: ${leaked.join('; ')}`] : []),
      ...(lost > 0 ? [`lost ${lost} bytes`] : []),
    ].join('\n  ');
    if (row.notes.length < MAX_NOTES) row.notes.push(`${fault}: ${why.split('\n')[0]}`);
    throw new Error(`fault "${fault}" (${area}):\n  ${why}`);
  }

  rowList(): LedgerRow[] {
    return [...this.rows.values()];
  }

  /** The table and what leaked or was lost, or undefined when no fault ran. */
  summary(): { table: string; problems: string[] } | undefined {
    const all = this.rowList();
    if (all.length === 0) return undefined;
    const problems = all.filter((r) => r.leaked > 0 || r.lostBytes > 0).map((r) => `${r.area}: ${r.leaked} leaked, ${r.lostBytes} bytes lost (${r.notes.join(' | ')})`);
    return { table: ledgerTable(all), problems };
  }
}

/** The suite's ledger, printed by the root hook. */
export const ledger = new FaultLedger();

/** {@link FaultLedger.inject} on the suite's ledger. */
export function injectFault<T>(area: string, fault: string, body: () => Promise<T>, guards: readonly FaultGuard[] = []): Promise<T> {
  return ledger.inject(area, fault, body, guards);
}

/** The table the root hook prints (markdown, so it can go into the README as it is). */
export function ledgerTable(all: readonly LedgerRow[]): string {
  const total = all.reduce((t, r) => ({ injected: t.injected + r.injected, survived: t.survived + r.survived, leaked: t.leaked + r.leaked, lostBytes: t.lostBytes + r.lostBytes }), { injected: 0, survived: 0, leaked: 0, lostBytes: 0 });
  const line = (name: string, r: { injected: number; survived: number; leaked: number; lostBytes: number }) =>
    `| ${name} | ${r.injected} | ${r.survived} | ${r.leaked} | ${r.lostBytes} |`;
  return [
    '| fault area | faults injected | survived | objects leaked | bytes lost |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...all.map((r) => line(r.area, r)),
    line('**total**', total),
  ].join('\n');
}

/** Called by the root hook: the table when any fault ran, and what leaked or was lost. */
export function ledgerSummary(): { table: string; problems: string[] } | undefined {
  return ledger.summary();
}
