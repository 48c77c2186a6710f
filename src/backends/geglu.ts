import * as tf from '@tensorflow/tfjs';
import { FusedGEGLU, fusedKernelFor, runFused } from './kernels.js';

/** GELU with the exact (erf) form, as torch.nn.functional.gelu's default. */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))));
}

/**
 * The GEGLU gate after its projection: h [..., 2*inner] -> h[..., :inner] * gelu(h[..., inner:])
 * (upstream GEGLU: `x, gate = proj(x).chunk(2, dim=-1); x * F.gelu(gate)`). One kernel on webgpu.
 */
export function geglu(h: tf.Tensor): tf.Tensor {
  if (fusedKernelFor(FusedGEGLU, [h], {})) return runFused(FusedGEGLU, { h }, {});
  return tf.tidy(() => {
    const [x, gate] = tf.split(h, 2, -1);
    return tf.mul(x, gelu(gate));
  });
}
