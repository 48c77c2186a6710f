import { formatStat, type Stat } from './stats.js';

/** The rows of issue 16's table, in order. */
export type RowKey = 'unet-call' | 'unet-call-b2' | 'guided-step' | 'video' | 'memory';
export const ROW_KEYS: readonly RowKey[] = ['unet-call', 'unet-call-b2', 'guided-step', 'video', 'memory'];

export interface Shape { frames: number; height: number; width: number }
export const shapeKey = (s: Shape): string => `${s.frames}x${s.height}x${s.width}`;

/**
 * A measured figure (ms samples, or bytes: the peak in use, with the pool's peak beside it where known), a remark in
 * its place, or why it is missing.
 */
export interface Cell { stat?: Stat; unit?: 'ms' | 's'; bytes?: number; poolBytes?: number; text?: string; error?: string; skipped?: string }

/**
 * issue 16's table, one section per video shape: rows ROW_KEYS, columns the t2v variants then the PyTorch ways.
 * A cell never filled reads "not run"; a failed or skipped one "failed [n]" / "skipped [n]" with the reason
 * below the table.
 */
export class ResultTable {
  readonly columns: string[] = [];
  private readonly shapes: Shape[] = [];
  private readonly cells = new Map<string, Cell>();
  private readonly rowsUsed = new Map<string, Set<RowKey>>();
  private readonly expectedCols = new Set<string>();

  constructor(private readonly steps: number, private readonly guidance: number) {}

  addColumn(label: string): void {
    if (!this.columns.includes(label)) this.columns.push(label);
  }

  /** Declares the rows a scenario will fill for a shape, so that what does not come reads "not run". */
  expect(shape: Shape, rows: readonly RowKey[], column: string): void {
    this.addColumn(column);
    if (!this.shapes.some((s) => shapeKey(s) === shapeKey(shape))) this.shapes.push(shape);
    const used = this.rowsUsed.get(shapeKey(shape)) ?? new Set<RowKey>();
    for (const r of rows) used.add(r);
    this.rowsUsed.set(shapeKey(shape), used);
    this.expectedCols.add(`${shapeKey(shape)}|${column}`);
  }

  set(shape: Shape, row: RowKey, column: string, cell: Cell): void {
    this.expect(shape, [row], column);
    this.cells.set(`${shapeKey(shape)}|${row}|${column}`, cell);
  }

  /** Marks every listed cell not yet filled as failed with `error`. */
  fail(shape: Shape, rows: readonly RowKey[], column: string, error: string): void {
    for (const r of rows) if (!this.cells.has(`${shapeKey(shape)}|${r}|${column}`)) this.set(shape, r, column, { error });
  }

  /** A column's new name (the PyTorch columns say what attention ran once the script has reported it). */
  renameColumn(from: string, to: string): void {
    const i = this.columns.indexOf(from);
    if (i < 0 || from === to) return;
    this.columns[i] = to;
    for (const [k, c] of [...this.cells]) {
      const [sh, row, col] = k.split('|');
      if (col === from) {
        this.cells.delete(k);
        this.cells.set(`${sh}|${row}|${to}`, c);
      }
    }
    for (const k of [...this.expectedCols]) {
      const [sh, col] = k.split('|');
      if (col === from) {
        this.expectedCols.delete(k);
        this.expectedCols.add(`${sh}|${to}`);
      }
    }
  }

  get(shape: Shape, row: RowKey, column: string): Cell | undefined {
    return this.cells.get(`${shapeKey(shape)}|${row}|${column}`);
  }

  private rowLabel(row: RowKey): string {
    switch (row) {
      case 'unet-call': return 'one UNet call, batch 1';
      case 'unet-call-b2': return 'one UNet call, batch 2 (x repeated)';
      case 'guided-step': return 'guided step (UNet at batch 2; t2v: x once under [cond, uncond])';
      case 'video': return `${this.steps}-step video, DDIM, guidance ${this.guidance} (text, denoise, decode)`;
      case 'memory': return 'GPU memory, peak in use (pool: peak allocated)';
    }
  }

  /** The tables in markdown, failures numbered beneath each. */
  render(): string {
    const out: string[] = [];
    for (const shape of this.shapes) {
      const used = this.rowsUsed.get(shapeKey(shape))!;
      const cols = this.columns.filter((c) => this.expected(shape, c));
      const notes: string[] = [];
      out.push(`### ${shape.frames} frames, ${shape.width}x${shape.height} (latents 4x${shape.frames}x${shape.height / 8}x${shape.width / 8})`, '');
      out.push(`| | ${cols.join(' | ')} |`, `|---|${cols.map(() => '---').join('|')}|`);
      for (const row of ROW_KEYS.filter((r) => used.has(r))) {
        const line = cols.map((c) => {
          const cell = this.cells.get(`${shapeKey(shape)}|${row}|${c}`);
          if (!cell) return 'not run';
          const why = cell.error ?? cell.skipped;
          if (why !== undefined) {
            let i = notes.indexOf(why);
            if (i < 0) i = notes.push(why) - 1;
            return `${cell.error !== undefined ? 'failed' : 'skipped'} [${i + 1}]`;
          }
          if (cell.stat) return cell.unit === 's' ? formatStat(cell.stat, 's', 2, 1e-3) : formatStat(cell.stat, 'ms', 1);
          if (cell.bytes !== undefined) {
            const gib = (b: number) => (b / 2 ** 30).toFixed(2);
            return `${gib(cell.bytes)} GiB${cell.poolBytes !== undefined ? ` (pool ${gib(cell.poolBytes)})` : ''}`;
          }
          return cell.text ?? '';
        });
        out.push(`| ${this.rowLabel(row)} | ${line.join(' | ')} |`);
      }
      out.push('');
      notes.forEach((n, i) => out.push(`[${i + 1}] ${n.replace(/\s+/g, ' ')}  `));
      if (notes.length) out.push('');
    }
    return out.join('\n');
  }

  private expected(shape: Shape, column: string): boolean {
    return this.expectedCols.has(`${shapeKey(shape)}|${column}`);
  }
}
