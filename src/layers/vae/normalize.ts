import { GroupNorm } from '../common/norm.js';
import type { VAEConfig } from './config.js';

/**
 * Upstream `Normalize(in_channels)`: GroupNorm with the configured groups and eps, affine. Upstream's
 * `nonlinearity` (swish, x * sigmoid(x)) always follows a Normalize here, so callers use `forward(x, true)`,
 * GroupNorm's SiLU, which a backend may fuse.
 */
export function Normalize(channels: number, c: VAEConfig): GroupNorm {
  return new GroupNorm(c.normNumGroups, channels, c.normEps);
}
