/**
 * Lane groups: a few adjacent invocations of one subgroup share a row (a query's head in the short-sequence
 * attention, a LayerNorm row). Each lane holds every lanes-th vec4 of it, so a group reads the row as one contiguous
 * run, and the lanes' partial sums meet through subgroupShuffleXor.
 */

/**
 * The lanes a row of `vec4s` vec4s gets: a power of two up to 16 that divides them and fits the device's smallest
 * subgroup; 0 where that is fewer than 2 (no subgroups: the kernels' one-invocation-per-row forms).
 */
export function laneGroupSize(vec4s: number, subgroupMinSize: number): number {
  let lanes = 1;
  while (lanes * 2 <= Math.min(16, subgroupMinSize) && vec4s % (lanes * 2) === 0) lanes *= 2;
  return subgroupMinSize >= 2 && lanes >= 2 ? lanes : 0;
}

/** Throws unless `lanes` (asked for by a caller) is 0 or a power of two up to 16 that divides `vec4s`. */
export function checkLanes(lanes: number, vec4s: number, what: string): void {
  if (lanes !== 0 && (vec4s % lanes !== 0 || lanes > 16 || (lanes & (lanes - 1)) !== 0)) {
    throw new Error(`${what}: ${lanes} lanes do not divide its ${vec4s} vec4s`);
  }
}

/** WGSL: the f32 variable `v` summed over its lane group (every lane gets the sum). */
export function laneSum(v: string, lanes: number): string {
  return Array.from({ length: Math.log2(lanes) }, (_, i) => `${v} += subgroupShuffleXor(${v}, ${1 << i}u);`).join(' ');
}

/** `f` of each vec4 index a lane holds (0 .. count - 1), joined by `sep`. */
export function perLane(count: number, f: (t: number) => string, sep = '\n  '): string {
  return Array.from({ length: count }, (_, t) => f(t)).join(sep);
}
