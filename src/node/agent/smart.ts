/**
 * SMART health via `smartctl --json -a`: the overall verdict and the counters an administrator
 * acts on. The parser is pure; `readSmart` is the shell and never throws (no SMART = Unknown).
 */
import type { DiskHealth } from '../../crds/nodedisk.js';
import { exec, ToolMissingError } from '../../host/exec.js';
import { errorMessage } from '../../util/errors.js';

/** smartctl exit-status bits (man smartctl): 0-1 the command failed, 3 disk failing, 4 prefail attrs below threshold. */
const EXIT_COMMAND_FAILED = 0b11;
const SMART_TIMEOUT_MS = 60_000;

/** Health from smartctl's JSON (without checkedTime, which the caller sets). */
export function parseSmartctl(json: string): Omit<DiskHealth, 'checkedTime'> {
  let doc: any;
  try {
    doc = JSON.parse(json);
  } catch {
    return { verdict: 'Unknown', message: 'smartctl did not print JSON (smartmontools older than 7.0?)' };
  }
  const exitStatus: number = doc?.smartctl?.exit_status ?? 0;
  const messages: string[] = (doc?.smartctl?.messages ?? []).map((m: { string?: string }) => m.string).filter(Boolean);
  if (doc?.smart_status?.passed === undefined) {
    const why =
      messages[0] ?? (exitStatus & EXIT_COMMAND_FAILED ? 'smartctl could not open the device' : 'the device reports no SMART status');
    return { verdict: 'Unknown', message: `no SMART data: ${why}` };
  }
  const health: { -readonly [K in keyof DiskHealth]: DiskHealth[K] } = { verdict: doc.smart_status.passed ? 'Passed' : 'Failed' };
  const temp = doc.temperature?.current;
  if (Number.isInteger(temp)) health.temperatureCelsius = temp;
  const hours = doc.power_on_time?.hours;
  if (Number.isInteger(hours) && hours >= 0) health.powerOnHours = hours;
  const attrs: Array<{ id: number; raw?: { value?: number } }> = doc.ata_smart_attributes?.table ?? [];
  const attr = (id: number): number | undefined => {
    const v = attrs.find((a) => a.id === id)?.raw?.value;
    return Number.isInteger(v) && v! >= 0 ? v : undefined;
  };
  const realloc = attr(5) ?? (Number.isInteger(doc.scsi_grown_defect_list) ? doc.scsi_grown_defect_list : undefined);
  if (realloc !== undefined) health.reallocatedSectors = realloc;
  const pending = attr(197);
  if (pending !== undefined) health.pendingSectors = pending;
  const nvme = doc.nvme_smart_health_information_log;
  if (nvme) {
    if (Number.isInteger(nvme.media_errors)) health.mediaErrors = nvme.media_errors;
    if (Number.isInteger(nvme.percentage_used)) health.percentageUsed = Math.min(255, nvme.percentage_used);
  }
  if (health.verdict === 'Failed')
    health.message = 'the device predicts its own failure (SMART overall-health FAILED): move data off it and replace it';
  return health;
}

/** Reads SMART for one device; `Unknown` with the reason when there is none (loop devices, VMs, no smartctl). */
export async function readSmart(devicePath: string): Promise<Omit<DiskHealth, 'checkedTime'>> {
  try {
    const res = await exec('smartctl', ['--json', '-a', devicePath], { timeoutMs: SMART_TIMEOUT_MS });
    return parseSmartctl(res.stdout);
  } catch (err) {
    if (err instanceof ToolMissingError) return { verdict: 'Unknown', message: err.message };
    return { verdict: 'Unknown', message: `smartctl failed: ${errorMessage(err)}` };
  }
}

/** The Healthy condition for a health reading. */
export function healthCondition(health: DiskHealth | undefined): { status: 'True' | 'False' | 'Unknown'; reason: string; message: string } {
  if (!health) return { status: 'Unknown', reason: 'NotChecked', message: 'SMART health has not been read yet' };
  if (health.verdict === 'Failed')
    return { status: 'False', reason: 'SmartFailed', message: health.message ?? 'SMART overall-health FAILED' };
  if (health.verdict === 'Unknown')
    return { status: 'Unknown', reason: 'SmartUnavailable', message: health.message ?? 'no SMART data for this device' };
  if ((health.pendingSectors ?? 0) > 0) {
    return {
      status: 'False',
      reason: 'PendingSectors',
      message: `${health.pendingSectors} sector(s) are unreadable and waiting to be remapped: data on them is at risk`,
    };
  }
  if ((health.mediaErrors ?? 0) > 0) {
    return { status: 'False', reason: 'MediaErrors', message: `the device reports ${health.mediaErrors} unrecovered media error(s)` };
  }
  return { status: 'True', reason: 'SmartPassed', message: 'SMART overall-health self-assessment passed' };
}
