import { defineConfig } from 'vitest/config'

export default defineConfig({
  // scripts/test-lanes.sh gives each lane its own: two vitest processes writing one results.json
  // at once could leave the other reading half a file
  cacheDir: process.env.EBB_VITEST_CACHE ?? 'node_modules/.vite',
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks'
  }
})
