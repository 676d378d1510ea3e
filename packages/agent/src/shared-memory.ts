/**
 * The agent's side of our shared-memory extension (service `vaccel_ts.memory.SharedMemory`, never
 * seen by upstream peers): a connection asks for a nonce (Offer), hands its sealed memfd over the
 * handover socket with it, and attaches it (Attach); or, from a VM the host gave device memory,
 * attaches that. Regions are scoped to their connection and die with it.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { fstatSync } from 'node:fs';
import { VaccelError } from '@vaccel/core';
import { closeQuietly, native } from '@vaccel/memory';
import type { ServiceImpl } from '@vaccel/protocol';
import type { SharedMemoryService } from '@vaccel/protocol/service';
import type { CallContext } from '@vaccel/ttrpc';
import { type HandoverSocket, NONCE_BYTES } from './handover.js';
import type { ConnectionState } from './state.js';

type Impl = ServiceImpl<(typeof SharedMemoryService)['method']>;

/** Outstanding offers per connection (each Attach uses one). */
const MAX_OFFERS = 16;
/** How long Attach waits for the handover its nonce names. */
const HANDOVER_WAIT_MS = 5000;

/** Builds the service over the agent's handover socket (undefined without the addon or a unix address). */
export function sharedMemoryService(handover: () => HandoverSocket | undefined): Impl {
  const state = (ctx: CallContext): ConnectionState => ctx.connection.context as ConnectionState;

  const checkRoom = (conn: ConnectionState, size: number): void => {
    if (conn.regions.count >= conn.limits.maxRegions)
      throw new VaccelError(
        'EUSERS',
        `more than ${conn.limits.maxRegions} shared regions on this connection`,
      );
    if (size <= 0 || size > conn.limits.maxRegionBytes)
      throw new VaccelError(
        'E2BIG',
        `a shared region must be 1 … ${conn.limits.maxRegionBytes} bytes, got ${size}`,
      );
  };

  return {
    offer(_request, ctx) {
      const conn = state(ctx);
      const socket = handover();
      const limits = {
        deviceBytes: BigInt(conn.device?.buffer.byteLength ?? 0),
        maxRegionBytes: BigInt(conn.limits.maxRegionBytes),
        maxRegions: conn.limits.maxRegions,
      };
      // Descriptors can be handed over only by a local process we can identify; a VM given device
      // memory (whose peer is its VMM) uses that instead.
      if (!socket || !conn.peer || conn.device) return limits;
      if (conn.offers.size >= MAX_OFFERS)
        throw new VaccelError('EUSERS', `more than ${MAX_OFFERS} region offers pending on this connection`);
      const nonce = randomBytes(NONCE_BYTES);
      conn.offers.add(nonce.toString('hex'));
      return { ...limits, nonce, handoverPath: socket.path };
    },

    async attach({ nonce, device }, ctx) {
      const conn = state(ctx);
      if (device) {
        if (!conn.device)
          throw new VaccelError(
            'ENOTSUP',
            'this connection has no device memory (it is not from a VM given one)',
          );
        checkRoom(conn, conn.device.buffer.byteLength);
        const regionId = conn.regions.add(conn.device.buffer, false);
        return { regionId, size: BigInt(conn.device.buffer.byteLength) };
      }
      const key = Buffer.from(nonce).toString('hex');
      const socket = handover();
      if (!socket || !conn.offers.delete(key))
        throw new VaccelError(
          'EINVAL',
          'attach: no such offer on this connection (call Offer first; a nonce is used once)',
        );
      const { fd, pid, uid } = await socket.take(nonce, HANDOVER_WAIT_MS, ctx.signal);
      try {
        if (pid !== conn.peer?.pid || uid !== conn.peer.uid)
          throw new VaccelError(
            'EPERM',
            'the region was handed over by another process than this connection’s',
          );
        // An unsealed memfd could be shrunk after we map it, and touching the lost pages would
        // kill the agent with SIGBUS: only a size that can never change is mapped.
        if (!native().sizeSealed(fd))
          throw new VaccelError(
            'EPERM',
            'a shared region must be a memfd sealed against shrinking and growing',
          );
        const size = fstatSync(fd).size;
        checkRoom(conn, size);
        const regionId = conn.regions.add(native().mmap(fd, size, 0), true);
        return { regionId, size: BigInt(size) };
      } finally {
        closeQuietly(fd); // the mapping keeps the memory; the descriptor is not needed
      }
    },

    detach({ regionId }, ctx) {
      state(ctx).regions.detach(regionId);
      return {};
    },
  };
}
