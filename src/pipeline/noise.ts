/**
 * The seeded noise generator behind `--seed`: xoshiro128** (Blackman and Vigna) seeded by SplitMix32 from the seed,
 * and Box-Muller on 53-bit uniforms. It runs in plain JavaScript on the CPU, so a seed gives the same noise on every
 * backend, machine and run; values are generated in the upstream layout [1, 4, frames, h, w], C order, and rounded
 * to float32. docs/generate.md states the exact algorithm.
 */
export class NoiseGenerator {
  private s = new Uint32Array(4);
  private spare: number | null = null;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`seed must be a non-negative integer, got ${seed}`);
    // SplitMix32 over the low and high 32 bits of the seed fills the 128-bit state.
    let x = (seed >>> 0) ^ Math.imul(Math.floor(seed / 0x100000000) >>> 0, 0x9e3779b9);
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.s.every((v) => v === 0)) this.s[0] = 1;
  }

  /** Next 32-bit output of xoshiro128**. */
  nextUint32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  nextDouble(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A standard normal (Box-Muller; the second value of each pair is used next). */
  nextNormal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const u1 = 1 - this.nextDouble(); // (0, 1]: the log is finite
    const u2 = this.nextDouble();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  /** `n` standard normals as float32. */
  normal(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.nextNormal();
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Initial latent noise in the upstream layout [1, channels, frames, h, w] for a seed. */
export function seededNoise(seed: number, shape: readonly number[]): Float32Array {
  return new NoiseGenerator(seed).normal(shape.reduce((a, b) => a * b, 1));
}

/** A fresh seed when none is given (reported in the result, so the run can be repeated). */
export function randomSeed(): number {
  return globalThis.crypto.getRandomValues(new Uint32Array(1))[0];
}
