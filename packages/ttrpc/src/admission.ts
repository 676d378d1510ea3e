/**
 * Admission of frame payloads against a memory budget. The frame-size limit bounds one frame; a
 * server shared by many peers also needs a bound on all of them together, checked before the
 * bytes are read into memory of the server's own. A server with a {@link FrameAdmission} asks it
 * about every payload of {@link ADMIT_FROM} bytes or more as soon as the frame's header is read:
 *
 * - admitted: the bytes count until the call the frame belongs to has finished (its handler
 *   settled), or at once when the frame starts no call (a malformed or late frame, or a closed
 *   connection's partial frame);
 * - refused: the payload is skipped unread, as an oversized frame's is (the connection stays in
 *   sync), and the request is answered with {@link FrameAdmission.refusal} (a refused data frame
 *   fails its stream the same way).
 *
 * Smaller frames are read into the reader's shared 64 KiB slabs and bounded by the in-flight call
 * limit; they are not asked about.
 * @module
 */
import type { StatusReply } from './status.js';
import { ALIGN_FROM } from './wire.js';

/** Payloads at least this long are admitted (smaller ones share the reader's slabs). */
export const ADMIT_FROM = ALIGN_FROM;

/** A budget the server admits big frame payloads against (see the module comment). */
export interface FrameAdmission {
  /** True admits a payload of `length` bytes (counted until {@link release}); false refuses it. */
  admit(length: number): boolean;
  /** Gives back `length` bytes admitted earlier. */
  release(length: number): void;
  /** The status a refused request gets (default: RESOURCE_EXHAUSTED naming the size). */
  refusal?(length: number): StatusReply;
}
