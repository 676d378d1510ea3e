/**
 * The models a guest session has loaded, to load again wherever the session's agent-side state went
 * away: after a reconnect (one agent, plugin.ts) or a move to another agent (multi.ts). Which ops
 * load or unload a model, and which arg names it, come from the op table.
 * @internal
 */
import { type Arg, Args, type OpArgs, type OpType, opInfo, opName, ReadArg } from '@vaccel/core';

export class LoadedModels {
  /** Model resource id → the op that loaded it. */
  readonly #models = new Map<number, OpType>();

  /** Notes an op that succeeded: a load adds its model, an unload removes it; other ops do nothing. */
  note(op: OpType, read: readonly Arg[]): void {
    const info = opInfo(op);
    if (!info?.loads && info?.unloads === undefined) return;
    const id = ReadArg.int64(read[info.resourceArg ?? 0], `${opName(op)} model id`);
    if (info.loads) this.#models.set(id, op);
    else this.#models.delete(id);
  }

  /**
   * Runs each noted load again, in load order, through `run`. A load that fails is forgotten (its
   * model is gone for this session: the next reconnect does not try it again) and the others still
   * run; then the first failure is thrown, so the op that needed the replay says why.
   */
  async replay(run: (op: OpType, args: OpArgs) => Promise<void>): Promise<void> {
    let failed: { error: unknown } | undefined;
    for (const [model, op] of [...this.#models]) {
      try {
        await run(op, { read: [Args.int64(model)], write: [Args.raw()] });
      } catch (error) {
        this.#models.delete(model);
        failed ??= { error };
      }
    }
    if (failed) throw failed.error;
  }
}
