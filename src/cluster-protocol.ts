/**
 * The messages between the primary of `--workers N` (src/cluster.ts, with its admin
 * view src/cluster-view.ts) and each worker (src/cluster-worker.ts), over the cluster's
 * IPC channel: the requests the primary sends, the answer each kind gets, and the
 * envelopes both sides exchange. Types and one guard only, so that every side imports
 * it and none imports another side.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { ConnectionInfo } from './connection-info.js';
import type { ListenerInfo, ReloadResult, TargetInfo } from './proxy-info.js';
import type { ToxiproxyAction, ToxiproxyOutcome } from './toxiproxy-host.js';
import type { HealthToPrimary, HealthToWorker } from './upstream/shared-health.js';

/** WorkerRequest is a question or an action the primary sends one worker. */
export type WorkerRequest =
  | { readonly kind: 'listeners' }
  | { readonly kind: 'connections' }
  | { readonly kind: 'histograms' }
  | { readonly kind: 'close'; readonly id: string; readonly reset: boolean }
  | {
      readonly kind: 'drain';
      readonly listener: string;
      readonly address: string;
      readonly drained: boolean;
    }
  | { readonly kind: 'reload' }
  | { readonly kind: 'toxiproxy'; readonly action: ToxiproxyAction };

/** WorkerAnswers maps each request kind to the worker's answer. */
export interface WorkerAnswers {
  listeners: ListenerInfo[];
  connections: ConnectionInfo[];
  histograms: MetricObjectWithValues<MetricValue<string>>[];
  close: boolean;
  drain: TargetInfo | 'no_listener' | 'no_target';
  reload: ReloadResult;
  toxiproxy: ToxiproxyOutcome;
}

/** RequestOf is the request of one kind. */
export type RequestOf<K extends WorkerRequest['kind']> = Extract<WorkerRequest, { kind: K }>;

/** Messages are tagged `proxy:*`; the cluster's own (`NODE_CLUSTER`) never reach us. */
export type ToWorker =
  | { type: 'proxy:request'; seq: number; request: WorkerRequest }
  | { type: 'proxy:shutdown'; graceful: boolean; signal: string | undefined }
  | { type: 'proxy:snapshot' }
  | { type: 'proxy:health-states'; states: HealthToWorker };

/** FromWorker: what a worker sends the primary. */
export type FromWorker =
  | { type: 'proxy:ready' }
  | { type: 'proxy:failed'; status: 1 | 2; message: string }
  | { type: 'proxy:answer'; seq: number; value: unknown }
  | { type: 'proxy:refused'; seq: number; code: string; message: string }
  | { type: 'proxy:health'; report: HealthToPrimary };

/** isMessage tells our messages from anything else on the channel. */
export function isMessage<T extends { type: string }>(value: unknown): value is T {
  return (
    typeof value === 'object' &&
    value !== null &&
    'type' in value &&
    typeof value.type === 'string' &&
    value.type.startsWith('proxy:')
  );
}
