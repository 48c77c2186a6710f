import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StageTimings } from '../pipeline/result.js';
import type { VideoFormat } from './job-data.js';

/** What a finished job returns (and what `<results>/<id>.json` holds). */
export interface JobResult {
  /** The video, absolute. */
  path: string;
  seed: number;
  timings: StageTimings;
  format: VideoFormat;
  frames: number;
  width: number;
  height: number;
  /** ms spent writing the video (0 when an earlier run had written it). */
  saveMs: number;
}

/** Job ids become file names: BullMQ's are decimal; custom ones must keep to these characters. */
export function checkJobId(id: string | undefined): string {
  if (!id || !/^[\w.-]{1,128}$/.test(id) || id.startsWith('.')) throw new Error(`job id ${JSON.stringify(id)} cannot name a result file`);
  return id;
}

export const resultJsonPath = (dir: string, id: string) => join(dir, `${checkJobId(id)}.json`);
export const resultVideoPath = (dir: string, id: string, format: VideoFormat) => join(dir, `${checkJobId(id)}.${format}`);

/** The result an earlier run of this job completed, or null. The JSON is written last, so its presence means done. */
export function readResult(dir: string, id: string): JobResult | null {
  const file = resultJsonPath(dir, id);
  if (!existsSync(file)) return null;
  try {
    const r = JSON.parse(readFileSync(file, 'utf8')) as JobResult;
    return existsSync(r.path) ? r : null;
  } catch {
    return null;
  }
}

const tmpName = (dir: string, id: string, ext: string) =>
  join(dir, `.${id}.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2, 8)}.tmp.${ext}`);

/**
 * Publishes a complete temporary file under `final` with link(2), which fails when `final` exists: two runs of one
 * job (a stalled job picked up while its first worker still writes) can both finish, and the first one's file stays.
 */
function publish(tmp: string, final: string): boolean {
  try {
    linkSync(tmp, final);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
}

/**
 * Writes a job's video, then its JSON, each complete before it appears under its name, each at most once. `save`
 * writes the video to the path it is given (VideoResult.save). Returns the result that is on disk.
 */
export async function writeResult(dir: string, id: string, format: VideoFormat, save: (tmp: string) => Promise<unknown>,
  meta: Omit<JobResult, 'path' | 'format' | 'saveMs'>): Promise<JobResult> {
  mkdirSync(dir, { recursive: true });
  const video = resultVideoPath(dir, id, format);
  let saveMs = 0;
  if (!existsSync(video)) {
    const t0 = performance.now();
    const tmp = tmpName(dir, id, format);
    try {
      await save(tmp);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    publish(tmp, video);
    saveMs = performance.now() - t0;
  }
  const result: JobResult = { path: video, format, ...meta, saveMs };
  const tmp = tmpName(dir, id, 'json');
  writeFileSync(tmp, `${JSON.stringify(result, null, 2)}\n`);
  if (!publish(tmp, resultJsonPath(dir, id))) return readResult(dir, id) ?? result;
  return result;
}
