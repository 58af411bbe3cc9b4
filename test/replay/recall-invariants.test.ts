import { spawnSync } from 'node:child_process'
import { cpSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { checkReplay } from '../../src/intervention/checker.js'
import { projectRoot, topologyPath } from '../../src/paths.js'
import { loadTopology } from '../../src/rules/topology.js'
import { tempDir } from '../helpers.js'

/**
 * Issue 3's "done when": over a 10k-user simulation replayed by the real bin, every task keeps
 * the channel rules, caps, consent and quiet hours (checked by src/intervention/checker.ts,
 * which shares no decision code with the engine). The topology is the default one with SMS
 * opt-out and push capped to one a week, so that fallbacks, SMS caps and consent revocations
 * (the simulator revokes SMS for some users) are all exercised.
 */
const root = projectRoot()
const tmp = tempDir('ebb-recall-')
afterAll(() => { tmp.cleanup() })

function ebb (...args: string[]): { code: number | null, stdout: string, stderr: string } {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'ebb.js'), ...args], { encoding: 'utf8', cwd: root, maxBuffer: 1 << 26 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

const topologyFile = join(tmp.dir, 'topology.yaml')
writeFileSync(topologyFile, readFileSync(topologyPath('default.yaml'), 'utf8')
  .replace('plans: plans.yaml', `plans: ${topologyPath('plans.yaml')}`)
  .replace(/^model: .*$/m, `model: ${topologyPath('churn-model.json')}`)
  .replace('consentByDefault: [PUSH, EMAIL, IN_APP]', 'consentByDefault: [PUSH, SMS, EMAIL, IN_APP]')
  .replace('PUSH: { max: 1, days: 1 }', 'PUSH: { max: 1, days: 7 }'))
const events = join(tmp.dir, 'events.jsonl')
const out = join(tmp.dir, 'out')

describe('recall tasks over a 10k-user simulation', () => {
  const sim = ebb('simulate', '--users', '10000', '--days', '45', '--seed', '23', '--out', events)
  const replay = ebb('replay', '--in', events, '--out', out, '--topology', topologyFile, '--until', '2026-03-01T00:00:00Z')

  it('replays, and prints the KPI table with the treatment and holdout recall rates and the uplift', () => {
    expect(sim.code).toBe(0)
    expect(replay.stderr).not.toMatch(/error|EBB_/i)
    expect(replay.code).toBe(0)
    expect(replay.stdout).toMatch(/recall within the first task's window: treatment \d+\.\d% of \d+, holdout \d+\.\d% of \d+; uplift -?\d+\.\d pts \(95% CI/)
    const kpis = JSON.parse(readFileSync(join(out, 'kpis.json'), 'utf8')) as { overall: { treatment: number, holdout: number }, decisions: Record<string, number> }
    // About a tenth of the decided first tasks are held out.
    const share = kpis.overall.holdout / (kpis.overall.holdout + kpis.overall.treatment)
    expect(share).toBeGreaterThan(0.07)
    expect(share).toBeLessThan(0.13)
    expect(kpis.decisions.TASK).toBeGreaterThan(1000)
  })

  it('every task keeps the channel rules, consent, quiet hours, caps and the golden window', async () => {
    const r = await checkReplay(events, out, loadTopology(topologyFile))
    expect(r.violations).toEqual([])
    const tasks = readFileSync(join(out, 'tasks.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { channel: string })
    // The variant really exercises fallbacks: more than one channel is used.
    expect(new Set(tasks.map((t) => t.channel)).size).toBeGreaterThanOrEqual(3)
    expect(r.outcomes).toBeGreaterThan(0)
  })

  it('the checker catches a task that breaks a rule (so a clean result means something)', async () => {
    const broken = join(tmp.dir, 'broken')
    cpSync(out, broken, { recursive: true })
    const lines = readFileSync(join(broken, 'tasks.jsonl'), 'utf8').trim().split('\n')
    const t = JSON.parse(lines[0]) as { sendAt: number, taskId: string }
    t.sendAt = Date.parse('2026-01-01T18:00:00Z') // 02:00 in Shanghai: quiet hours, and before its alert
    lines.push(lines[1]) // a task emitted twice
    lines[0] = JSON.stringify(t)
    writeFileSync(join(broken, 'tasks.jsonl'), lines.join('\n') + '\n')
    const r = await checkReplay(events, broken, loadTopology(topologyFile))
    const rules = new Set(r.violations.map((v) => v.rule))
    expect(rules.has('one task per (user, episode, plan step)')).toBe(true)
    expect([...rules].some((x) => x === 'quiet hours' || x === 'sendAt not before the alert')).toBe(true)
    // And from the command line: exit 1 with the violations listed.
    const c = ebb('check', '--in', events, '--out', broken, '--topology', topologyFile)
    expect(c.code).toBe(1)
    expect(c.stdout).toMatch(/violations/)
  })
})
