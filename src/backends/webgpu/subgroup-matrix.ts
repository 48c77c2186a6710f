/**
 * WGSL for subgroup-matrix operations (tensor cores), real or emulated; every call site gets distinct variable names.
 * Real: `subgroupMatrixLoad` / `MultiplyAccumulate` / `Store` on f16 left and right matrices and f32 results of the
 * configuration's size. Emulated (16 x 16 x 16 only, tests): plain per-lane loops with the same semantics, 32
 * consecutive invocations as one subgroup and `lane` (their index, 0..31) in scope. A left matrix is then the lane's
 * row (16 values) in registers, a result the lane's 8 values of row lane / 2, and a right matrix is only remembered
 * (buffer, offset, layout): the multiply reads it from memory, which must hold it unchanged until then. That lets a
 * kernel's indexing, masking and epilogues be checked on a device without subgroup matrices (lavapipe).
 */
export function matrixOps(emulate: boolean, cfg: { M: number; N: number; K: number } = { M: 16, N: 16, K: 16 }) {
  if (emulate && (cfg.M !== 16 || cfg.N !== 16 || cfg.K !== 16)) throw new Error('matrixOps: emulation is 16x16x16 only');
  const left = `subgroup_matrix_left<f16, ${cfg.K}, ${cfg.M}>`;
  const right = `subgroup_matrix_right<f16, ${cfg.N}, ${cfg.K}>`;
  const res = `subgroup_matrix_result<f32, ${cfg.N}, ${cfg.M}>`;
  const rights = new Map<string, (kq: string, nn: string) => string>();
  // a stride is a number (a constant) or the name of a WGSL constant
  const u = (stride: string | number) => (typeof stride === 'number' ? `${stride}u` : stride);
  return {
    /** `name` = a left (A) matrix: rows of K at buf[off + row * stride + col] */
    loadLeft: (name: string, buf: string, off: string, stride: string | number) => emulate
      ? `var ${name} : array<f32, 16>;
      for (var i = 0u; i < 16u; i++) { ${name}[i] = f32(${buf}[${off} + (lane / 2u) * ${u(stride)} + i]); }`
      : `let ${name} = subgroupMatrixLoad<${left}>(&${buf}, ${off}, false, ${u(stride)});`,
    /** `name` = a right (B) matrix, element (k, n) at buf[off + k*stride + n], or at buf[off + n*stride + k] (colMajor) */
    loadRight: (name: string, buf: string, off: string, stride: string | number, colMajor = false) => {
      if (!emulate) return `let ${name} = subgroupMatrixLoad<${right}>(&${buf}, ${off}, ${colMajor}, ${u(stride)});`;
      rights.set(name, (kq, nn) => `${buf}[${off} + ${colMajor ? `(${nn}) * ${u(stride)} + ${kq}` : `${kq} * ${u(stride)} + (${nn})`}]`);
      return '';
    },
    // explicit zero values: a bare `var x : array<f32, 8>;` inside the key loop kept its previous tile's values on
    // lavapipe (WGSL says it is zeroed each time), which broke every multi-tile case of the emulation
    zero: (name: string) => emulate ? `var ${name} = array<f32, 8>();` : `var ${name} = ${res}();`,
    /** the existing result `name` = rows of N f32 at buf[off + row * stride + col] */
    loadResult: (name: string, buf: string, off: string, stride: string | number) => emulate
      ? `for (var i = 0u; i < 8u; i++) { ${name}[i] = f32(${buf}[${off} + (lane / 2u) * ${u(stride)} + (lane % 2u) * 8u + i]); }`
      : `${name} = subgroupMatrixLoad<${res}>(&${buf}, ${off}, false, ${u(stride)});`,
    /** acc += a b */
    mma: (acc: string, a: string, b: string) => emulate
      ? `for (var kq = 0u; kq < 16u; kq++) { for (var i = 0u; i < 8u; i++) { ${acc}[i] = fma(${a}[kq], f32(${rights.get(b)!('kq', '(lane % 2u) * 8u + i')}), ${acc}[i]); } }`
      : `${acc} = subgroupMatrixMultiplyAccumulate(${a}, ${b}, ${acc});`,
    /** rows of N to buf[off + row * stride + col] */
    store: (buf: string, off: string, acc: string, stride: string | number) => emulate
      ? `for (var i = 0u; i < 8u; i++) { ${buf}[${off} + (lane / 2u) * ${u(stride)} + (lane % 2u) * 8u + i] = ${acc}[i]; }`
      : `subgroupMatrixStore(&${buf}, ${off}, ${acc}, false, ${u(stride)});`,
    /** The directives the real builtins need (none emulated). */
    enable: emulate ? '' : 'enable chromium_experimental_subgroup_matrix;\ndiagnostic(off, chromium.subgroup_matrix_uniformity);',
  };
}
