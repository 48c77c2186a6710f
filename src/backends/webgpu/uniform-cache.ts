import type { MakeUniforms, Uniform, UniformBinding, WebGPUBackendInternals } from '../../tfjs-internals.js';

/** Switch and counts of one backend's uniform cache (the benchmark and tests flip `enabled`). */
export interface CacheStats { enabled: boolean; hits: number; misses: number }

const UNIFORM_CACHE_MAX = 1 << 16;

/**
 * tfjs writes every dispatch's uniforms (shapes, strides, sizes) into a pooled buffer, which changes from dispatch
 * to dispatch. The same values recur every UNet call, so this keeps one buffer per distinct content instead: no
 * write and no pool traffic (about a seventh of a dispatch's CPU time here). A kept buffer is taken out of the
 * backend's release list (uniformPendingDisposal), so nothing else ever writes it.
 */
export class UniformCache {
  readonly stats: CacheStats;
  private readonly cache = new Map<string, UniformBinding>();

  constructor(enabled: boolean) {
    this.stats = { enabled, hits: 0, misses: 0 };
  }

  /** The binding for `u` on `b`; `stock` is tfjs's own makeUniforms (called with `b` as this). */
  make(b: WebGPUBackendInternals, u: Uniform[], stock: MakeUniforms): UniformBinding {
    if (!this.stats.enabled) return stock.call(b, u);
    let key = '';
    for (const d of u) key += `${d.type[0]}${d.data.join(',')};`;
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      this.stats.hits++;
      return hit;
    }
    this.stats.misses++;
    const r = stock.call(b, u);
    const pending = b.uniformPendingDisposal;
    const i = pending.lastIndexOf(r.buffer);
    if (i < 0) return r; // not the pool's release list as expected: leave it to tfjs
    pending.splice(i, 1);
    if (this.cache.size >= UNIFORM_CACHE_MAX) this.cache.clear();
    this.cache.set(key, r);
    return r;
  }
}
