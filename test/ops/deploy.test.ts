import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { projectRoot } from '../../src/paths.js'
import { engine } from '../http/helpers.js'

const root = projectRoot()

interface Panel { id: number, type: string, title: string, gridPos: { x: number, y: number, w: number, h: number }, datasource?: { type: string, uid: string }, targets?: Array<{ refId: string, expr: string }> }

/** Every metric name an expression uses (ebb_… identifiers, not label values in quotes). */
function metricNames (expr: string): string[] {
  return [...expr.replace(/"[^"]*"/g, '""').matchAll(/\b(ebb_[a-z0-9_]+)\b/g)].map((m) => m[1])
}

describe('Grafana dashboard (deploy/grafana/ebb.json)', () => {
  const dash = JSON.parse(readFileSync(join(root, 'deploy', 'grafana', 'ebb.json'), 'utf8')) as { title: string, uid: string, schemaVersion: number, panels: Panel[], templating: { list: Array<{ name: string }> }, __inputs: Array<{ name: string, pluginId: string }> }

  it('is a Grafana 10+ dashboard model that imports with a Prometheus data source input', () => {
    expect(dash.schemaVersion).toBeGreaterThanOrEqual(36)
    expect(dash.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/)
    expect(dash.__inputs).toEqual([expect.objectContaining({ name: 'DS_PROMETHEUS', pluginId: 'prometheus' })])
    const ids = dash.panels.map((p) => p.id)
    expect(new Set(ids).size).toBe(ids.length)
    for (const p of dash.panels) {
      expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24)
      if (p.type === 'row') continue
      expect(p.datasource).toEqual({ type: 'prometheus', uid: '$' + '{DS_PROMETHEUS}' }) // Grafana's import placeholder, not a template
      expect(p.targets?.length).toBeGreaterThan(0)
    }
    // What the issue asks to see.
    const titles = dash.panels.map((p) => p.title.toLowerCase()).join(' | ')
    for (const want of ['records read', 'lag', 'p99', 'alerts', 'tasks', 'recall rate', 'uplift', 'dead letters', 'restore']) expect(titles).toContain(want)
  })

  it('every PromQL expression uses only metrics Ebb exports', async () => {
    const { metrics } = await engine()
    const exported = new Set<string>()
    for (const m of await metrics.registry.getMetricsAsJSON()) {
      exported.add(m.name)
      if (m.type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.add(m.name + s)
    }
    const used = dash.panels.flatMap((p) => (p.targets ?? []).flatMap((t) => metricNames(t.expr)))
    expect(used.length).toBeGreaterThan(20)
    expect(used.filter((n) => !exported.has(n))).toEqual([])
    // The alerting rules too.
    const rules = readFileSync(join(root, 'deploy', 'prometheus', 'ebb-rules.yml'), 'utf8')
    expect(metricNames(rules).filter((n) => !exported.has(n))).toEqual([])
  })
})

describe('Dockerfile', () => {
  const text = readFileSync(join(root, 'Dockerfile'), 'utf8')
  const stages = text.split(/^FROM /m).slice(1)
  const runtime = stages[stages.length - 1]

  it('is multi-stage; the runtime stage installs without dev dependencies, runs as non-root, checks /healthz, keeps state in a volume, runs `ebb run`', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2)
    expect(runtime).toMatch(/npm ci --omit=dev/)
    expect(runtime).not.toMatch(/npm (ci|install)(?![^\n]*--omit=dev)/)
    const user = /^USER\s+(\S+)/m.exec(runtime)?.[1]
    expect(user).toBeDefined()
    expect(user).not.toMatch(/^(root|0)(:|$)/)
    expect(runtime).toMatch(/^HEALTHCHECK[\s\S]*\/healthz/m)
    expect(runtime).toMatch(/^VOLUME \["\/var\/lib\/ebb"\]/m)
    // The same Node flags wherever ebb starts: the image, the `ebb` command's first line, npm start (README, "Node flags").
    expect(runtime).toMatch(/^ENTRYPOINT \["node", "--max-semi-space-size=64", "bin\/ebb\.js"\]/m)
    expect(readFileSync(join(root, 'bin', 'ebb.js'), 'utf8').split('\n')[0]).toBe('#!/usr/bin/env -S node --max-semi-space-size=64')
    expect((JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start).toBe('node --max-semi-space-size=64 bin/ebb.js demo')
    expect(runtime).toMatch(/^CMD \["run", "--config"/m)
    // No dev dependency is copied from the build stage: only dist/.
    expect([...runtime.matchAll(/COPY --from=build (\S+)/g)].map((m) => m[1])).toEqual(['/app/dist'])
  })

  it('builds and runs on Node 24, the active LTS line, which package.json\'s engines and the test lanes cover', () => {
    expect([...text.matchAll(/^FROM node:(\d+)-/gm)].map((m) => m[1])).toEqual(['24', '24'])
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string }, scripts: Record<string, string> }
    expect(pkg.engines.node.split('||').map((v) => v.trim())).toEqual(['20', '22', '24'])
    expect(pkg.scripts.test).toMatch(/scripts\/test-lanes\.sh/)
    // the broker-free suites run under 22 and 24 too, and the whole broker suite under 24
    const lanes = readFileSync(join(root, 'scripts', 'test-lanes.sh'), 'utf8')
    expect(lanes).toMatch(/test-node\.sh 22 "\$\{rest\[@\]\}"/)
    expect(lanes).toMatch(/test-node\.sh 24 "\$\{rest\[@\]\}"/)
    expect(lanes).toMatch(/^BROKER_SUITES=\(test\/kafka test\/ops\)$/m)
    expect(lanes).toMatch(/test-node\.sh 24 "\$\{BROKER_SUITES\[@\]\}"/)
  })

  it('passes hadolint', () => {
    const hadolint = join(root, '.cache', 'venv', 'bin', 'hadolint')
    expect(existsSync(hadolint), 'hadolint is not installed: run scripts/test-deps.sh').toBe(true)
    const r = spawnSync(hadolint, ['--no-color', join(root, 'Dockerfile')], { encoding: 'utf8' })
    expect(r.stdout + r.stderr).toBe('')
    expect(r.status).toBe(0)
  })
})
