/**
 * A lazily (re)connected link to an agent. Each new connection is a new "generation": the agent
 * forgets sessions and resources when a connection drops, so the plugin rebuilds them per
 * generation. Connecting while the agent is down fails fast; nothing waits forever.
 * @internal
 */
import type { Duplex } from 'node:stream';
import { Args, allOps, OpType as Op, type OpType, VaccelError } from '@vaccel/core';
import {
  AGENT_SERVICE,
  type AgentStub,
  agentStub,
  connect,
  errorFromRpc,
  loadAddon,
  quickAckOnRead,
  type TlsClientOptions,
  toWireArg,
} from '@vaccel/protocol';
import { Client, Code, TtrpcError } from '@vaccel/ttrpc';

/** The 0.8 async build's service string, tried when the sync one is not served. */
const AGENT_SERVICE_ASYNC = 'vaccel.asynchronous.agent.AgentService';
/** vAccel 0.7.1's service string (docs/protocol.md §2): another op numbering and genop layout. */
export const AGENT_SERVICE_V07 = 'vaccel.AgentService';

/** Ops upstream's 0.8 RPC plugin registers (for agents that cannot list their own). */
const UPSTREAM_OPS = allOps()
  .filter((info) => info.upstreamServed)
  .map((info) => info.op);

export interface Linked {
  readonly client: Client;
  readonly stub: AgentStub;
  /** The service string the agent answers on (0.8 sync or async; 0.7.1's only when overridden). */
  readonly service: string;
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
  /**
   * Re-arm TCP_QUICKACK after each read on tcp:// and tls:// connections when the
   * `@vaccel/memory` addon is there (default true; see quick-ack.ts). Never loads the addon for
   * other addresses.
   */
  quickAck?: boolean;
  /** Called once per connection when quick-ack was first armed (for a log line). */
  quickAcked?: (fd: number) => void;
  /** Use a vAccel 0.7 agent anyway (`VACCEL_VERSION_IGNORE`), instead of refusing it with EPROTO. */
  versionIgnore?: boolean;
  /** Called when a 0.7 agent is used because of {@link versionIgnore} (for a warning). */
  versionIgnored?: (message: string) => void;
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
    const onRead = await this.#quickAck();
    const client = new Client(stream, {
      maxFrame: this.options.maxFrame,
      metadata,
      ...(onRead ? { onRead } : {}),
    });
    const address = this.options.address;
    let ours = false;
    let ops: OpType[] = UPSTREAM_OPS;
    let service = AGENT_SERVICE;
    // Our extension op: a vaccel-ts agent answers with its op list; upstream rejects it (EINVAL).
    // A peer that does not serve the service at all answers UNIMPLEMENTED: then the next service
    // string is tried, 0.8's async build's and then 0.7.1's, whose ops are numbered otherwise.
    const probe = (name: string) =>
      agentStub(client, name).genop({
        sessionId: 0n,
        readArgs: [toWireArg(Args.uint8(Op.ListOperations))],
        writeArgs: [toWireArg(Args.raw())],
      });
    for (const name of [AGENT_SERVICE, AGENT_SERVICE_ASYNC, AGENT_SERVICE_V07]) {
      try {
        const reply = await probe(name);
        const listed = JSON.parse(new TextDecoder().decode(reply.writeArgs[0]?.buf)) as { op: OpType }[];
        ops = listed.map(({ op }) => op);
        ours = true;
        service = name;
        break;
      } catch (error) {
        if (client.closed) throw errorFromRpc(error, `agent at ${address}`);
        if (error instanceof TtrpcError && error.code === Code.UNIMPLEMENTED) continue;
        service = name; // the service is there: an upstream agent
        break;
      }
    }
    if (service === AGENT_SERVICE_V07) {
      const found = `the agent at ${address} speaks vAccel 0.7 (service ${AGENT_SERVICE_V07}), whose op numbers and genop layout differ from 0.8's`;
      if (!this.options.versionIgnore) {
        await client.close();
        throw new VaccelError(
          'EPROTO',
          `${found}: upgrade it to vAccel 0.8, or set VACCEL_VERSION_IGNORE=1 to use it anyway`,
        );
      }
      this.options.versionIgnored?.(`${found}; using it anyway (VACCEL_VERSION_IGNORE)`);
    }
    const stub = agentStub(client, service);
    this.#linked = { client, stub, service, generation: ++this.#generation, ours, ops, resources: new Map() };
    return this.#linked;
  }

  /** The quick-ack hook for tcp:// and tls:// agents, when wanted and the addon is there. */
  async #quickAck(): Promise<((stream: Duplex) => void) | undefined> {
    const { address, quickAck = true } = this.options;
    if (!quickAck || process.platform !== 'linux' || !/^(tcp|tls):/.test(address)) return undefined;
    const lib = await loadAddon();
    return typeof lib === 'string' ? undefined : quickAckOnRead(lib, this.options.quickAcked);
  }
}
