const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half-precision bits of one float32 value, rounded to nearest even (as numpy's astype(float16)). */
export function float16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const e = (x >>> 23) & 0xff;
  let m = x & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (m !== 0 ? 0x200 : 0);
  const e16 = e - 112; // rebias 127 -> 15
  if (e16 >= 0x1f) return sign | 0x7c00;
  if (e16 <= 0) {
    if (e16 < -10) return sign;
    m |= 0x800000;
    const shift = 14 - e16;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) !== 0)) h++;
    return sign | h;
  }
  let h = (e16 << 10) | (m >>> 13);
  const rem = m & 0x1fff;
  // a carry out of the mantissa bumps the exponent, and from the largest finite value gives infinity: both right
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++;
  return sign | h;
}

/** float32 -> float16 storage (little-endian uint16 half floats, tfjs's `quantization: {dtype: 'float16'}`). */
export function toFloat16(data: Float32Array): Uint16Array {
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = float16Bits(data[i]);
  return out;
}

let table: Float32Array | null = null;

function halfTable(): Float32Array {
  if (table === null) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const s = h & 0x8000 ? -1 : 1;
      const e = (h >> 10) & 0x1f;
      const m = h & 0x3ff;
      table[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  return table;
}

/**
 * float16 bits -> float32 values (the inverse of toFloat16 on every finite half value), through a 65,536-entry
 * table, into `out` when given (it must hold bits.length values).
 */
export function fromFloat16(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  const t = halfTable();
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]];
  return out;
}
