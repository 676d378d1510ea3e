/**
 * `diagnostics_channel` events: free when nobody subscribes.
 *
 * - `vaccel:op:start` `{ op, name, plugin, session }`
 * - `vaccel:op:end` `{ op, name, plugin, session, durationMs }`
 * - `vaccel:op:error` `{ op, name, plugin, session, error }`
 * @module
 */
import { channel } from 'node:diagnostics_channel';

/** @internal */
export const opChannels = {
  start: channel('vaccel:op:start'),
  end: channel('vaccel:op:end'),
  error: channel('vaccel:op:error'),
};
