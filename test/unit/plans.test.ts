import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { CHURN_TYPES, LIMITS, parsePlanLibrary, render, textLength, VALUE_TIERS } from '../../src/intervention/config.js'
import { topologyPath } from '../../src/paths.js'
import { defaultTopology } from '../helpers.js'

const SHIPPED = readFileSync(topologyPath('plans.yaml'), 'utf8')
const ALL = `[${CHURN_TYPES.join(', ')}]`

/** A one-plan library (plus the win-back it needs) with the given first-step templates. */
function library (templates: string, channels = '[SMS]', extraPlans = ''): string {
  return `version: 1
linkBase: "https://e.bb/r/"
plans:
  - id: p
    churnTypes: ${ALL}
    valueTiers: [HIGH, MID, LOW]
    hook: { kind: content }
    steps:
      - channels: ${channels}
        templates:
          en:
${templates}
${extraPlans}
  - id: wb
    winback: true
    churnTypes: ${ALL}
    valueTiers: [HIGH, MID, LOW]
    hook: { kind: content }
    steps:
      - channels: [EMAIL]
        templates: { en: { EMAIL: { subject: "Back?", body: "{link}" } } }
`
}

function error (text: string): string {
  try {
    parsePlanLibrary(text, 'plans.yaml')
  } catch (err) {
    return (err as Error).message
  }
  return 'no error'
}

describe('plan library', () => {
  it('the shipped library loads, serves every churn type × value tier in both arms of plans, in en and zh', () => {
    const lib = parsePlanLibrary(SHIPPED, 'plans.yaml')
    expect(lib.regular).toHaveLength(CHURN_TYPES.length * VALUE_TIERS.length)
    expect(lib.regular.every((p) => p !== undefined && !p.winback)).toBe(true)
    expect(lib.winback.every((p) => p?.winback === true)).toBe(true)
    for (const p of lib.plans) for (const s of p.steps) expect([...s.templates.keys()].sort()).toEqual(['en', 'zh'])
    // The default topology loads it, with churn-type rules for the five non-default types.
    const iv = defaultTopology().intervention
    expect(new Set(iv?.churnTypes.map((c) => c.type))).toEqual(new Set(CHURN_TYPES.filter((t) => t !== 'LOW_ACTIVITY')))
  })

  it('every shipped SMS renders within the channel rule with a real link', () => {
    const lib = parsePlanLibrary(SHIPPED, 'plans.yaml')
    const link = lib.linkBase + 't0123456789abcdef'
    for (const p of lib.plans) {
      for (const s of p.steps) {
        for (const [, byChannel] of s.templates) {
          const sms = byChannel.get('SMS')
          if (sms === undefined) continue
          expect(sms.title).toBeNull()
          expect(textLength(render(sms.body, { link, days: '999', hook: p.hook.value }))).toBeLessThanOrEqual(LIMITS.smsBody)
        }
      }
    }
  })

  it('rejects an SMS longer than 70 characters with the link, at its line', () => {
    const text = library('            SMS: { body: "Friends: we kept twenty brand new posts for you, come and see {link}", keyword: "Friends" }')
    expect(error(text)).toMatch(/^plans\.yaml:12: plan p, step 0, en SMS: SMS body renders to \d+ characters with the link; at most 70$/)
  })

  it('rejects an SMS without a link, a push title over 20, an in-app title, an email without subject', () => {
    expect(error(library('            SMS: { body: "Friends: new posts", keyword: "Friends" }'))).toMatch(/plans\.yaml:12: .*must carry \{link\}/)
    expect(error(library('            PUSH: { title: "A title that is far too long", body: "x" }', '[PUSH]'))).toMatch(/plans\.yaml:12: .*push title renders to 28 characters; at most 20/)
    expect(error(library('            IN_APP: { title: "T", body: "x" }', '[IN_APP]'))).toMatch(/plans\.yaml:12: .*unknown key "title"/)
    expect(error(library('            EMAIL: { body: "x" }', '[EMAIL]'))).toMatch(/plans\.yaml:12: .*needs a subject/)
  })

  it('rejects an SMS keyword outside the first 10 characters, and an unknown variable', () => {
    expect(error(library('            SMS: { body: "New posts from friends {link}", keyword: "friends" }'))).toMatch(/plans\.yaml:12: .*keyword "friends" must appear within the first 10/)
    expect(error(library('            SMS: { body: "Hi {name} {link}", keyword: "Hi" }'))).toMatch(/plans\.yaml:12: .*unknown variable \{name\}/)
  })

  it('rejects an unknown churn type, a plan that can never match, and a gap in coverage', () => {
    expect(error(library('            SMS: { body: "Hi {link}", keyword: "Hi" }').replace(`churnTypes: ${ALL}\n    valueTiers: [HIGH, MID, LOW]\n    hook: { kind: content }\n    steps:\n      - channels: [SMS]`, 'churnTypes: [BORED]\n    valueTiers: [HIGH]\n    hook: { kind: content }\n    steps:\n      - channels: [SMS]'))).toMatch(/plans\.yaml:5: plan p: churnTypes: unknown "BORED"/)
    const shadowed = `  - id: never
    churnTypes: [NEW_USER]
    valueTiers: [LOW]
    hook: { kind: content }
    steps:
      - channels: [EMAIL]
        templates: { en: { EMAIL: { subject: "S", body: "B" } } }`
    expect(error(library('            SMS: { body: "Hi {link}", keyword: "Hi" }', '[SMS]', shadowed))).toMatch(/^plans\.yaml:13: plan never can never match/)
    const gap = library('            SMS: { body: "Hi {link}", keyword: "Hi" }').replace('valueTiers: [HIGH, MID, LOW]\n    hook: { kind: content }\n    steps:\n      - channels: [SMS]', 'valueTiers: [HIGH, MID]\n    hook: { kind: content }\n    steps:\n      - channels: [SMS]')
    expect(error(gap)).toMatch(/no plan serves CONTENT_FATIGUE\/LOW, .*LOW_ACTIVITY\/LOW/)
  })
})
