import { constants as bufferConstants } from 'node:buffer';
import { totalmem } from 'node:os';

/** What the host can hold, in Node (browser builds get host-memory.browser.ts). */
export function hostMemoryBytes(): number {
  return totalmem();
}

/** The largest typed array this runtime allocates, and where that number comes from. */
export function largestHostArray(): { bytes: number; why: string } {
  return { bytes: bufferConstants.MAX_LENGTH, why: 'the largest typed array Node allocates' };
}
