import { tfPermutation, type ParamRole } from '../src/layers/module.js';
import { permute } from './permute.js';

/** Moves a weight from PyTorch layout to tfjs layout by its role (see ParamRole). Returns a new buffer. */
export function toTfLayout(data: Float32Array, torchShape: readonly number[], role: ParamRole): Float32Array {
  if (role === 'plain' || (role === 'linear' && torchShape.length === 1)) return data;
  // the result's row-major order is already that of tfShape (a reshape after the permutation moves nothing)
  return permute(data, torchShape, tfPermutation(role, torchShape.length));
}
