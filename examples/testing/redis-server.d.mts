/** Types of redis-server.mjs, for TypeScript suites (vitest/faults.test.ts). */

/** RedisServer is a running throwaway redis-server: its port on 127.0.0.1, and how to end it. */
export interface RedisServer {
  port: number;
  /** stop ends the server (SIGTERM to its PID) and resolves once it has exited. */
  stop(): Promise<void>;
}

/** startRedisServer starts a redis-server on a free port of 127.0.0.1, no persistence. */
export function startRedisServer(): Promise<RedisServer>;
