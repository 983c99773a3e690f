/**
 * How `kubectl stowage` prints: aligned tables, colour only on a terminal (NO_COLOR honoured),
 * human sizes, a capacity bar, and `-o json|yaml` for scripts. Pure functions; the caller writes.
 */
import { styleText } from 'node:util';
import { stringify as toYaml } from 'yaml';

/** Columns assumed when the output is not a terminal (a pipe has no width). */
export const DEFAULT_COLUMNS = 120;
const GAP = '  ';
const BAR_USED = '█';
const BAR_ALLOCATED = '▒';
const BAR_FREE = '░';

export type OutputFormat = 'table' | 'wide' | 'json' | 'yaml';
/** What `-o` accepts; the plain table is what you get without it. */
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['wide', 'json', 'yaml'];

export type Tone = 'ok' | 'warn' | 'bad' | 'dim' | 'bold' | 'plain';

/** Text with the tone it would be coloured in; colour is decided when the table is rendered. */
export interface Cell {
  readonly text: string;
  readonly tone?: Tone;
}

export type CellInput = string | Cell;

export interface Style {
  /** Colour on: a terminal, NO_COLOR unset (any value turns colour off, https://no-color.org), TERM not dumb. */
  readonly color: boolean;
  /** Terminal width; into a pipe $COLUMNS, else DEFAULT_COLUMNS. */
  readonly columns: number;
}

export function styleFor(stream: { isTTY?: boolean; columns?: number }, env: NodeJS.ProcessEnv = process.env): Style {
  const tty = stream.isTTY === true;
  const color = tty && env.NO_COLOR === undefined && env.TERM !== 'dumb';
  const fromEnv = Number(env.COLUMNS);
  const columns = tty && stream.columns ? stream.columns : Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : DEFAULT_COLUMNS;
  return { color, columns };
}

const TONE_STYLES: Record<Exclude<Tone, 'plain'>, Parameters<typeof styleText>[0]> = {
  ok: 'green',
  warn: 'yellow',
  bad: 'red',
  dim: 'gray',
  bold: 'bold',
};

export function paint(text: string, tone: Tone | undefined, style: Style): string {
  if (!style.color || !tone || tone === 'plain' || text === '') return text;
  return styleText(TONE_STYLES[tone], text, { validateStream: false });
}

const cellOf = (c: CellInput): Cell => (typeof c === 'string' ? { text: c } : c);

/**
 * Columns padded to their widest cell (padding before colour, so escape codes never skew the
 * alignment); the last column is not padded. Headers are upper case, as kubectl prints them.
 */
export function renderTable(headers: readonly string[], rows: readonly (readonly CellInput[])[], style: Style): string {
  const cells = rows.map((r) => r.map(cellOf));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => [...(r[i]?.text ?? '')].length)));
  const line = (row: readonly Cell[]): string =>
    row
      .map((c, i) => {
        const padded = i === row.length - 1 ? c.text : c.text + ' '.repeat(widths[i] - [...c.text].length);
        return paint(padded, c.tone, style);
      })
      .join(GAP)
      .trimEnd();
  return [line(headers.map((h) => ({ text: h }))), ...cells.map(line)].join('\n') + '\n';
}

/** Bytes for people: one decimal in the largest binary unit that keeps the number ≥ 1 (`1.5Gi`). */
export function humanBytes(bytes: bigint | undefined): string {
  if (bytes === undefined) return '-';
  const units = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];
  let unit = 0;
  let scaled = Number(bytes);
  while (scaled >= 1024 && unit < units.length - 1) {
    scaled /= 1024;
    unit++;
  }
  if (unit === 0) return `${bytes}B`;
  const text = scaled >= 100 ? scaled.toFixed(0) : scaled.toFixed(1);
  return `${text.replace(/\.0$/, '')}${units[unit]}`;
}

/**
 * `[███▒▒░░░░░]`: used, allocated but not (yet) written, and available, scaled to `width` cells
 * inside the brackets. A non-zero part always shows at least one cell, so a little use is visible.
 */
export function capacityBar(
  used: bigint,
  allocated: bigint,
  total: bigint,
  width: number,
): { text: string; usedCells: number; allocatedCells: number } {
  const inner = Math.max(1, width - 2);
  if (total <= 0n) return { text: `[${' '.repeat(inner)}]`, usedCells: 0, allocatedCells: 0 };
  const clamp = (v: bigint): bigint => (v < 0n ? 0n : v > total ? total : v);
  const cells = (v: bigint): number => {
    const n = Number((clamp(v) * BigInt(inner)) / total);
    return v > 0n && n === 0 ? 1 : n;
  };
  const allocCells = Math.min(inner, cells(allocated > used ? allocated : used));
  const usedCells = Math.min(allocCells, cells(used));
  const text = `[${BAR_USED.repeat(usedCells)}${BAR_ALLOCATED.repeat(allocCells - usedCells)}${BAR_FREE.repeat(inner - allocCells)}]`;
  return { text, usedCells, allocatedCells: allocCells };
}

/** `-o json|yaml`: a List of the view's items, stable key order, newline-terminated. */
export function renderStructured(kind: string, items: readonly unknown[], format: 'json' | 'yaml'): string {
  const doc = { apiVersion: 'stowage.dev/v1alpha1', kind, items };
  return format === 'json' ? `${JSON.stringify(doc, null, 2)}\n` : toYaml(doc);
}

/** Cuts text to `max` characters with an ellipsis (tables on a terminal stay one line per row). */
export function truncate(text: string, max: number): string {
  if (max <= 1) return text.slice(0, Math.max(0, max));
  return [...text].length <= max ? text : `${[...text].slice(0, max - 1).join('')}…`;
}

export function parseOutputFormat(value: string): OutputFormat {
  if ((OUTPUT_FORMATS as readonly string[]).includes(value)) return value as OutputFormat;
  throw new Error(`-o ${value} is not an output format; use one of: ${OUTPUT_FORMATS.join(', ')} (or leave -o out for the table)`);
}
