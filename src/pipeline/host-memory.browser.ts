/** What the host can hold, in a page: the Device Memory API's rough figure (GB, capped at 8 by browsers), else 4 GB. */
export function hostMemoryBytes(): number {
  const gb = (globalThis.navigator as { deviceMemory?: number } | undefined)?.deviceMemory;
  return (typeof gb === 'number' && gb > 0 ? gb : 4) * 2 ** 30;
}

/** The largest typed array a page allocates (V8's limit), and where that number comes from. */
export function largestHostArray(): { bytes: number; why: string } {
  return { bytes: 2 ** 32 - 1, why: 'the largest typed array the browser allocates' };
}
