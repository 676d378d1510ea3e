/**
 * A progress bar on stderr while a figure runs (cli-progress). Silent when stderr is not a
 * terminal, so logs and CI output stay clean.
 * @module
 */
import { Presets, SingleBar } from 'cli-progress';

/** Counts steps of a run. */
export class Progress {
  readonly #bar: SingleBar;

  constructor(title: string, total: number) {
    this.#bar = new SingleBar(
      { format: `${title} [{bar}] {value}/{total} {step}`, hideCursor: true, clearOnComplete: true },
      Presets.shades_classic,
    );
    this.#bar.start(total, 0, { step: '' });
  }

  /** Names the step under way. */
  step(name: string): void {
    this.#bar.update({ step: name });
  }

  /** One step done. */
  tick(): void {
    this.#bar.increment();
  }

  stop(): void {
    this.#bar.stop();
  }
}
