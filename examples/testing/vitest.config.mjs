import { defineConfig } from 'vitest/config';

export default defineConfig({
  // node_modules/l4proxy links to the repository's root (file:../..): keep the link's
  // path so Vitest loads the built package as it is instead of transforming it.
  resolve: { preserveSymlinks: true },
  test: { include: ['vitest/**/*.test.ts'] },
});
