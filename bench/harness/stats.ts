/** A figure measured several times: median and range, the samples kept for the JSON. */
export interface Stat { median: number; min: number; max: number; runs: number[] }

export function stat(samples: number[]): Stat {
  if (!samples.length) throw new Error('no samples');
  const s = [...samples].sort((a, b) => a - b);
  const m = s.length >> 1;
  return { median: s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2, min: s[0], max: s[s.length - 1], runs: samples };
}

/** `median (min-max) unit`, or just the median for one sample; `scale` converts from the samples' unit. */
export function formatStat(x: Stat, unit: string, digits: number, scale = 1): string {
  const f = (v: number) => (v * scale).toFixed(digits);
  return x.runs.length > 1 ? `${f(x.median)} ${unit} (${f(x.min)}-${f(x.max)})` : `${f(x.median)} ${unit}`;
}
