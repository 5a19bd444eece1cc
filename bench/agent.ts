/**
 * The agent: a child process of the benchmark (started by `Agent` in bench/lib.ts)
 * that runs upstream servers and load generators on request, so that none of them
 * shares an event loop with the proxy, the orchestrator or each other.
 *
 * Protocol (over the IPC channel): `{ id, role, params }` in, `{ id, ok, result }`
 * or `{ id, ok: false, error }` out. A server role answers with its port and keeps
 * serving; a load role answers with its figures. The agent exits when its parent
 * goes away, so an interrupted run leaves nothing behind.
 */
import { admissionClient } from './admission.js';
import { bulkClient, bulkServer } from './bulk.js';
import { churnClient } from './churn.js';
import { holdServer, idleClient } from './idle.js';
import type { AgentReply } from './processes.js';
import { rrClient, rrServer } from './request-response.js';
import { tlsBulkClient, tlsHandshakeClient } from './tls-clients.js';

type Role = (params: never) => Promise<unknown>;

const roles: Record<string, Role> = {
  bulkServer,
  bulkClient,
  rrServer,
  rrClient,
  churnClient,
  holdServer,
  idleClient,
  admissionClient,
  tlsBulkClient,
  tlsHandshakeClient,
};

interface Call {
  id: number;
  role: string;
  params: unknown;
}

function reply(message: AgentReply): void {
  process.send?.(message);
}

process.on('message', (message: Call) => {
  const role = roles[message.role] as ((params: unknown) => Promise<unknown>) | undefined;
  if (role === undefined) {
    reply({ id: message.id, ok: false, error: `unknown role ${message.role}` });
    return;
  }
  role(message.params).then(
    (result) => reply({ id: message.id, ok: true, result }),
    (err: unknown) => reply({ id: message.id, ok: false, error: String(err) }),
  );
});

process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
