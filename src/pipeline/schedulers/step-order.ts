/**
 * The step index of a multistep run: the first step may be any index (video-to-video starts later, as diffusers'
 * set_begin_index), every later one must follow the previous, since the solver's history is the previous steps'.
 */
export class StepOrder {
  private last: number | null = null;

  constructor(private readonly name: string, private readonly count: number) {}

  /** Checks that step i may run now and records it. */
  next(i: number): void {
    this.check(i);
    if (this.last !== null && i !== this.last + 1) {
      throw new Error(`${this.name}: step ${i} after step ${this.last}; a run's steps go in order`);
    }
    this.last = i;
  }

  check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) {
      throw new Error(`${this.name}: step index ${i} is outside 0..${this.count - 1}`);
    }
  }
}
