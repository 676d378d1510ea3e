/**
 * A lazily (re)connected link to an agent. Each new connection is a new "generation": the agent
 * forgets sessions and resources when a connection drops, so the plugin rebuilds them per
 * generation. Connecting while the agent is down fails fast; nothing waits forever.
 * @internal
 */
import { Args, OpType as Op, type OpType, opByName, VaccelError } from '@vaccel/core';
import { Client } from '@vaccel/ttrpc';
import { errorFromRpc } from './errors.js';
import { toWireArg } from './genop-codec.js';
import { type AgentStub, agentStub } from './light-client.js';
import { connect, type TlsClientOptions } from './transport.js';

/** Ops upstream's 0.8 RPC plugin registers (for agents that cannot list their own). */
const UPSTREAM_OPS = [
  'exec', 'exec_with_resource', 'image_classify', 'image_detect', 'image_segment', 'image_depth', 'image_pose',
  'tflite_model_load', 'tflite_model_unload', 'tflite_model_run', 'torch_model_load', 'torch_model_run',
  'blas_sgemm', 'fpga_arraycopy', 'fpga_mmult', 'fpga_parallel', 'fpga_vectoradd', 'minmax', 'opencv',
  'tf_model_load', 'tf_model_unload', 'tf_model_run',
].map((name) => opByName(name)!); // biome-ignore format: a list reads better packed

export interface Linked {
  readonly client: Client;
  readonly stub: AgentStub;
  readonly generation: number;
  /** True for a vaccel-ts agent (which lists its ops and knows our extension ops). */
  readonly ours: boolean;
  readonly ops: readonly OpType[];
  /** Resource digest → agent resource id, for this connection. */
  readonly resources: Map<string, bigint>;
}

export interface LinkOptions {
  address: string;
  token?: string;
  connectTimeoutMs?: number;
  maxFrame?: number;
  /** TLS material for `tls://` addresses, read when first needed. */
  tls?: () => Promise<TlsClientOptions | undefined>;
}

export class AgentLink {
  #linked: Linked | undefined;
  #connecting: Promise<Linked> | undefined;
  #generation = 0;
  #closed = false;

  constructor(readonly options: LinkOptions) {}

  /** The current connection, connecting (again) if needed. */
  get(signal?: AbortSignal): Promise<Linked> {
    if (this.#closed) return Promise.reject(new VaccelError('EBADF', 'the RPC plugin is closed'));
    if (this.#linked && !this.#linked.client.closed) return Promise.resolve(this.#linked);
    this.#connecting ??= this.#connect(signal).finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  /** The current connection if it is open; never connects. */
  get current(): Linked | undefined {
    return this.#linked && !this.#linked.client.closed ? this.#linked : undefined;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#linked?.client.close();
  }

  async #connect(signal?: AbortSignal): Promise<Linked> {
    const tls = this.options.address.startsWith('tls:') ? await this.options.tls?.() : undefined;
    const stream = await connect(this.options.address, {
      signal,
      timeoutMs: this.options.connectTimeoutMs,
      ...(tls ? { tls } : {}),
    });
    const metadata = this.options.token ? { authorization: `Bearer ${this.options.token}` } : undefined;
    const client = new Client(stream, { maxFrame: this.options.maxFrame, metadata });
    const stub = agentStub(client);
    let ours = false;
    let ops: OpType[] = UPSTREAM_OPS;
    try {
      // Our extension op: a vaccel-ts agent answers with its op list; upstream rejects it.
      const reply = await stub.genop({
        sessionId: 0n,
        readArgs: [toWireArg(Args.uint8(Op.ListOperations))],
        writeArgs: [toWireArg(Args.raw())],
      });
      const listed = JSON.parse(new TextDecoder().decode(reply.writeArgs[0]?.buf)) as { op: OpType }[];
      ops = listed.map(({ op }) => op);
      ours = true;
    } catch (error) {
      if (client.closed) throw errorFromRpc(error, `agent at ${this.options.address}`);
    }
    this.#linked = { client, stub, generation: ++this.#generation, ours, ops, resources: new Map() };
    return this.#linked;
  }
}
