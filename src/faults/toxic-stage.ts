/**
 * createToxicStage makes the Stage that does a toxic's harm on one stream of one
 * connection: one object per connection, stream and toxic (it keeps that
 * connection's timers and counts).
 */
import type { Stage } from '../stage.js';
import { BandwidthStage } from './bandwidth.js';
import type { ToxicEnv } from './env.js';
import { LatencyStage } from './latency.js';
import { LimitDataStage } from './limit-data.js';
import { NoopStage } from './noop.js';
import { ResetPeerStage } from './reset-peer.js';
import { SlicerStage } from './slicer.js';
import { SlowCloseStage } from './slow-close.js';
import { TimeoutStage } from './timeout.js';
import type { Toxic } from './toxic.js';

/**
 * createToxicStage: a new, unstarted stage for `toxic`. `previous` is the stage it
 * replaces on the same connection (an update), whose per-connection state carries
 * over (limit_data's count, as in Toxiproxy); null for a new one.
 */
export function createToxicStage(
  toxic: Toxic,
  env: ToxicEnv,
  previous: Stage | null = null,
): Stage {
  switch (toxic.type) {
    case 'latency':
      return new LatencyStage(toxic, env);
    case 'bandwidth':
      return new BandwidthStage(toxic, env);
    case 'slow_close':
      return new SlowCloseStage(toxic, env);
    case 'timeout':
      return new TimeoutStage(toxic, env);
    case 'reset_peer':
      return new ResetPeerStage(toxic, env);
    case 'slicer':
      return new SlicerStage(toxic, env);
    case 'limit_data':
      return new LimitDataStage(
        toxic,
        previous instanceof LimitDataStage ? previous.transmitted : 0,
      );
    case 'noop':
      return new NoopStage(toxic.name);
  }
}
