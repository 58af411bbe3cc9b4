import { existsSync } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import type { Node } from 'yaml'
import { readConfigText, YamlDoc } from '../config/yaml.js'
import { EbbError, Errors } from '../errors.js'
import { CHANNELS, type ChannelName as Channel } from '../events/user-event.js'
import type { Condition } from '../rules/topology.js'
import { epochDayOf } from '../time/zones.js'

/** The six churn segments of the recall stage (README, "Churn types"), in the order their index is stored in the state. */
export const CHURN_TYPES = ['CONTENT_FATIGUE', 'SOCIAL_DISCONNECT', 'FUNCTION_SUBSTITUTION', 'HIGH_VALUE', 'NEW_USER', 'LOW_ACTIVITY'] as const
export type ChurnType = typeof CHURN_TYPES[number]
export const VALUE_TIERS = ['HIGH', 'MID', 'LOW'] as const
export type Tier = typeof VALUE_TIERS[number]
export const LOCALES = ['en', 'zh'] as const
export type Locale = typeof LOCALES[number]
export const HOOK_KINDS = ['content', 'coupon', 'gift'] as const

/** Template variables and the widest text each can render to (lengths are checked at load). */
export const TEMPLATE_VARIABLES = ['link', 'days', 'hook'] as const
/** daysInactive as rendered in a template: at most three digits (the timer horizon is far below 999 days) */
const DAYS_WORST = '999'
/** taskId: 't' + 16 hex digits (see taskIdOf) */
export const TASK_ID_LENGTH = 17

/** Channel rules (README, "From alert to recall task"), in code points: SMS and push limits are what the handset shows. */
export const LIMITS = { smsBody: 70, smsKeywordWithin: 10, pushTitle: 20, pushBody: 50 } as const

export interface Template {
  /** push title or email subject; null for SMS and in-app */
  readonly title: string | null
  readonly body: string
}

export interface PlanStep {
  readonly step: number
  /** hours after the previous step's sendAt (0 for the first step) */
  readonly afterHours: number
  readonly channels: readonly Channel[]
  /** `channels` as indexes into CHANNELS, in the same order (the recall stage's hot path works on indexes) */
  readonly channelIndexes: readonly number[]
  readonly templates: ReadonlyMap<Locale, ReadonlyMap<Channel, Template>>
}

export interface Plan {
  readonly id: string
  readonly line: number
  readonly churnTypes: readonly ChurnType[]
  readonly valueTiers: readonly Tier[]
  /** a long-term win-back plan, for users past winbackAfterDays */
  readonly winback: boolean
  readonly hook: { readonly kind: typeof HOOK_KINDS[number], readonly tier: number, readonly value: string }
  readonly attributionWindowHours: number
  readonly expiresAfterMs: number
  readonly steps: readonly PlanStep[]
}

export interface PlanLibrary {
  readonly file: string
  readonly linkBase: string
  readonly plans: readonly Plan[]
  /** the plan for (churn type, value tier): index churnType × 3 + tier; first match in file order */
  readonly regular: readonly Plan[]
  readonly winback: readonly Plan[]
}

export interface ChannelCap { readonly max: number, readonly days: number }

export interface ChurnTypeRule { readonly type: ChurnType, readonly when: readonly Condition[] }

export interface InterventionConfig {
  readonly plans: PlanLibrary
  readonly locale: Locale
  readonly experiment: string
  readonly holdoutShare: number
  readonly goldenWindowMs: number
  readonly holidayWindowMs: number
  readonly winbackAfterDays: number
  /** local epoch-days on which the golden window is the holiday one */
  readonly holidays: ReadonlySet<number>
  /** quiet hours [quietFrom, quietTo) wrap midnight when quietFrom > quietTo */
  readonly quietFrom: number
  readonly quietTo: number
  /** per channel index (CHANNELS order), null when uncapped */
  readonly channelCaps: ReadonlyArray<ChannelCap | null>
  readonly allCap: ChannelCap | null
  /** per channel index: consent assumed until the user revokes it (opt-out) or only after a grant (opt-in) */
  readonly consentByDefault: readonly boolean[]
  /** first matching rule wins; LOW_ACTIVITY when none matches */
  readonly churnTypes: readonly ChurnTypeRule[]
}

/** Caps look back at most this many local days: task entries are kept that long. */
export const MAX_CAP_DAYS = 30

/**
 * Parses the topology's `intervention:` section and loads its plan library (path relative to
 * the topology file). `condition` parses a `{ signal, op, threshold }` the way rules do.
 */
export function parseIntervention (y: YamlDoc, node: Node, condition: (n: Node, where: string) => Condition, hasModel: boolean): InterventionConfig {
  y.onlyKeys(node, 'intervention', ['plans', 'locale', 'experiment', 'goldenWindow', 'winbackAfterDays', 'holidays', 'quietHours', 'caps', 'consentByDefault', 'churnTypes'])
  const plansNode = y.get(node, 'plans')
  const plansRef = y.str(plansNode, 'intervention.plans')
  const plansFile = isAbsolute(plansRef) ? plansRef : resolve(dirname(resolve(y.file)), plansRef)
  // A topology copied elsewhere without its plan library: say where the path comes from.
  if (!existsSync(plansFile)) y.fail(plansNode, `intervention.plans: ${plansFile} does not exist (a relative path is read from the topology's directory: copy ${plansRef} beside the topology, or give its absolute path)`)
  const localeNode = y.get(node, 'locale')
  const locale = y.str(localeNode, 'intervention.locale', 'en') as Locale
  if (!LOCALES.includes(locale)) y.fail(localeNode, `intervention.locale: "${locale}" is not one of ${LOCALES.join(', ')}`)

  const exp = y.get(node, 'experiment')
  y.onlyKeys(exp, 'intervention.experiment', ['name', 'holdoutShare'])
  const experiment = y.str(y.get(exp, 'name'), 'intervention.experiment.name', 'recall-default')
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(experiment)) y.fail(y.get(exp, 'name'), 'intervention.experiment.name: letters, digits, . _ - only (at most 64)')
  const holdoutShare = y.num(y.get(exp, 'holdoutShare'), 'intervention.experiment.holdoutShare', 0.1, 0, 0.9)

  const gw = y.get(node, 'goldenWindow')
  y.onlyKeys(gw, 'intervention.goldenWindow', ['normal', 'holiday'])
  const goldenWindowMs = y.duration(y.get(gw, 'normal'), 'intervention.goldenWindow.normal', 48 * 3_600_000)
  const holidayWindowMs = y.duration(y.get(gw, 'holiday'), 'intervention.goldenWindow.holiday', 24 * 3_600_000)
  if (goldenWindowMs < 3_600_000 || goldenWindowMs > 14 * 86_400_000) y.fail(y.get(gw, 'normal'), 'intervention.goldenWindow.normal: between 1h and 14d')
  if (holidayWindowMs < 3_600_000 || holidayWindowMs > goldenWindowMs) y.fail(y.get(gw, 'holiday'), 'intervention.goldenWindow.holiday: between 1h and the normal window')
  const winbackAfterDays = y.num(y.get(node, 'winbackAfterDays'), 'intervention.winbackAfterDays', 30, 1, 365, true)

  const holidays = new Set<number>()
  for (const h of y.seq(y.get(node, 'holidays'), 'intervention.holidays', false)) {
    const v = y.str(h, 'intervention.holidays')
    if (!/^\d{4}-\d{2}-\d{2}$/.test(v)) y.fail(h, `intervention.holidays: "${v}" is not a date like 2026-10-01`)
    try { holidays.add(epochDayOf(v)) } catch { y.fail(h, `intervention.holidays: "${v}" is not a real date`) }
  }

  const qh = y.get(node, 'quietHours')
  y.onlyKeys(qh, 'intervention.quietHours', ['from', 'to'])
  const quietFrom = y.num(y.get(qh, 'from'), 'intervention.quietHours.from', 22, 0, 23, true)
  const quietTo = y.num(y.get(qh, 'to'), 'intervention.quietHours.to', 8, 0, 23, true)
  if (quietFrom === quietTo && qh !== undefined) y.fail(qh, 'intervention.quietHours: from and to are equal (no quiet hours: leave the section out... or set them apart)')

  const capsNode = y.get(node, 'caps')
  y.onlyKeys(capsNode, 'intervention.caps', [...CHANNELS, 'all'])
  const cap = (key: string, dflt: ChannelCap | null): ChannelCap | null => {
    const c = y.get(capsNode, key)
    if (c === undefined) return capsNode === undefined ? dflt : null
    y.onlyKeys(c, `intervention.caps.${key}`, ['max', 'days'])
    return {
      max: y.num(y.get(c, 'max') ?? y.fail(c, `intervention.caps.${key}: needs max`), `intervention.caps.${key}.max`, 0, 0, 100, true),
      days: y.num(y.get(c, 'days') ?? y.fail(c, `intervention.caps.${key}: needs days`), `intervention.caps.${key}.days`, 0, 1, MAX_CAP_DAYS, true)
    }
  }
  // The contract's defaults: SMS ≤ 2 per 7 days, push ≤ 1 per day, all channels ≤ 3 per 7 days.
  const channelCaps = CHANNELS.map((ch) => cap(ch, ch === 'SMS' ? { max: 2, days: 7 } : ch === 'PUSH' ? { max: 1, days: 1 } : null))
  const allCap = cap('all', { max: 3, days: 7 })

  const consentNode = y.get(node, 'consentByDefault')
  const byDefault = consentNode === undefined ? [...CHANNELS] : y.enumList(consentNode, 'intervention.consentByDefault', CHANNELS)
  const consentByDefault = CHANNELS.map((ch) => byDefault.includes(ch))

  const churnTypes: ChurnTypeRule[] = []
  for (const item of y.seq(y.get(node, 'churnTypes'), 'intervention.churnTypes')) {
    y.onlyKeys(item, 'churn type', ['type', 'when'])
    const tNode = y.get(item, 'type')
    const type = y.str(tNode, 'churn type: type') as ChurnType
    if (!CHURN_TYPES.includes(type)) y.fail(tNode, `churn type: unknown "${type}" (known: ${CHURN_TYPES.join(', ')})`)
    const when = y.seq(y.get(item, 'when'), `churn type ${type}: when`).map((c) => condition(c, `churn type ${type}`))
    if (when.length === 0) y.fail(item, `churn type ${type}: "when" must list at least one condition`)
    if (!hasModel && when.some((c) => c.signal.needsModel)) y.fail(item, `churn type ${type}: uses churnScore, which needs a model (set \`model:\` in the topology)`)
    churnTypes.push({ type, when })
  }

  const plans = loadPlanLibrary(plansFile)
  for (const p of plans.plans) {
    for (const s of p.steps) {
      if (!s.templates.has(locale)) {
        throw new EbbError(Errors.TOPOLOGY_INVALID, `${plans.file}:${p.line}`, `plan ${p.id}, step ${s.step}: no templates for locale "${locale}" (intervention.locale in ${y.file})`)
      }
    }
  }
  return { plans, locale, experiment, holdoutShare, goldenWindowMs, holidayWindowMs, winbackAfterDays, holidays, quietFrom, quietTo, channelCaps, allCap, consentByDefault, churnTypes }
}

export function loadPlanLibrary (file: string): PlanLibrary {
  return parsePlanLibrary(readConfigText(file), file)
}

/** Code points, as a handset counts characters (a CJK character or an emoji is one). */
export function textLength (s: string): number {
  let n = 0
  for (const _ of s) n++
  return n
}

/**
 * Parses and validates a plan library. Rejected at load, with the line: a template that breaks
 * its channel's rule (rendered at its widest: the link in full, {days} as three digits), an
 * unknown variable, channel or churn type, a (churn type, tier) no plan serves, and a plan that
 * can never match because earlier plans take every (churn type, tier) it serves.
 */
export function parsePlanLibrary (text: string, file: string): PlanLibrary {
  const y = new YamlDoc(text, file)
  const root = y.root ?? undefined
  y.onlyKeys(root, 'plans file', ['version', 'linkBase', 'plans'])
  const version = y.get(root, 'version')
  if (y.num(version, 'version', 0, 1, 1, true) !== 1) y.fail(version ?? root, 'version: expected 1')
  const linkNode = y.get(root, 'linkBase')
  const linkBase = y.str(linkNode, 'linkBase')
  if (!/^https?:\/\/\S+$/.test(linkBase)) y.fail(linkNode, `linkBase: "${linkBase}" is not an http(s) URL`)
  const linkWorst = linkBase + 'x'.repeat(TASK_ID_LENGTH)

  const plans: Plan[] = []
  const ids = new Set<string>()
  for (const pn of y.seq(y.get(root, 'plans'), 'plans')) {
    y.onlyKeys(pn, 'plan', ['id', 'churnTypes', 'valueTiers', 'winback', 'hook', 'attributionWindow', 'expiresAfter', 'steps'])
    const idNode = y.get(pn, 'id')
    const id = y.str(idNode, 'plan: id')
    if (!/^[a-z][a-z0-9_-]{0,63}$/.test(id)) y.fail(idNode, `plan id "${id}": lower-case letters, digits, _ and - (at most 64)`)
    if (ids.has(id)) y.fail(idNode, `plan id "${id}" is used twice`)
    ids.add(id)
    const churnTypes = y.enumList(y.get(pn, 'churnTypes'), `plan ${id}: churnTypes`, CHURN_TYPES)
    const valueTiers = y.enumList(y.get(pn, 'valueTiers'), `plan ${id}: valueTiers`, VALUE_TIERS)
    if (churnTypes.length === 0 || valueTiers.length === 0) y.fail(pn, `plan ${id}: serves no churn type or no value tier`)
    const winback = y.bool(y.get(pn, 'winback'), `plan ${id}: winback`, false)
    const hookNode = y.get(pn, 'hook')
    y.onlyKeys(hookNode, `plan ${id}: hook`, ['kind', 'tier', 'value'])
    const kind = y.str(y.get(hookNode, 'kind'), `plan ${id}: hook.kind`) as Plan['hook']['kind']
    if (!HOOK_KINDS.includes(kind)) y.fail(y.get(hookNode, 'kind'), `plan ${id}: hook.kind "${kind}" is not one of ${HOOK_KINDS.join(', ')}`)
    const hook = { kind, tier: y.num(y.get(hookNode, 'tier'), `plan ${id}: hook.tier`, 0, 0, 3, true), value: y.str(y.get(hookNode, 'value'), `plan ${id}: hook.value`, '') }
    if (kind !== 'content' && (hook.tier === 0 || hook.value === '')) y.fail(hookNode, `plan ${id}: a ${kind} hook needs a tier (1–3) and a value`)
    const attributionWindowMs = y.duration(y.get(pn, 'attributionWindow'), `plan ${id}: attributionWindow`, 72 * 3_600_000)
    if (attributionWindowMs % 3_600_000 !== 0 || attributionWindowMs < 3_600_000 || attributionWindowMs > 30 * 86_400_000) y.fail(y.get(pn, 'attributionWindow'), `plan ${id}: attributionWindow must be whole hours, 1h..30d`)
    const expiresAfterMs = y.duration(y.get(pn, 'expiresAfter'), `plan ${id}: expiresAfter`, 48 * 3_600_000)
    if (expiresAfterMs < 3_600_000 || expiresAfterMs > 30 * 86_400_000) y.fail(y.get(pn, 'expiresAfter'), `plan ${id}: expiresAfter between 1h and 30d`)
    const vars = { link: linkWorst, days: DAYS_WORST, hook: hook.value }
    const steps: PlanStep[] = y.seq(y.get(pn, 'steps'), `plan ${id}: steps`).map((sn, step) => parseStep(y, sn, `plan ${id}, step ${step}`, step, vars))
    if (steps.length === 0) y.fail(pn, `plan ${id}: needs at least one step`)
    plans.push({ id, line: y.line(pn) ?? 1, churnTypes, valueTiers, winback, hook, attributionWindowHours: attributionWindowMs / 3_600_000, expiresAfterMs, steps })
  }

  const regular: Array<Plan | undefined> = new Array(CHURN_TYPES.length * VALUE_TIERS.length).fill(undefined)
  const winbackPlans: Array<Plan | undefined> = new Array(CHURN_TYPES.length * VALUE_TIERS.length).fill(undefined)
  for (const p of plans) {
    const table = p.winback ? winbackPlans : regular
    let takes = 0
    for (const t of p.churnTypes) {
      for (const v of p.valueTiers) {
        const k = CHURN_TYPES.indexOf(t) * VALUE_TIERS.length + VALUE_TIERS.indexOf(v)
        if (table[k] === undefined) { table[k] = p; takes++ }
      }
    }
    if (takes === 0) {
      throw new EbbError(Errors.TOPOLOGY_INVALID, `${file}:${p.line}`, `plan ${p.id} can never match: earlier ${p.winback ? 'win-back ' : ''}plans take every churn type × value tier it serves`)
    }
  }
  for (const [table, what] of [[regular, 'plan'], [winbackPlans, 'win-back plan']] as const) {
    const missing: string[] = []
    table.forEach((p, k) => { if (p === undefined) missing.push(`${CHURN_TYPES[Math.floor(k / 3)]}/${VALUE_TIERS[k % 3]}`) })
    if (missing.length > 0) y.fail(y.get(root, 'plans'), `no ${what} serves ${missing.join(', ')}: every churn type × value tier needs one`)
  }
  return { file, linkBase, plans, regular: regular as Plan[], winback: winbackPlans as Plan[] }
}

function parseStep (y: YamlDoc, sn: Node, where: string, step: number, vars: Record<string, string>): PlanStep {
  y.onlyKeys(sn, where, ['afterHours', 'channels', 'templates'])
  const afterHours = y.num(y.get(sn, 'afterHours'), `${where}: afterHours`, 0, step === 0 ? 0 : 1, step === 0 ? 0 : 24 * 30, true)
  if (step > 0 && y.get(sn, 'afterHours') === undefined) y.fail(sn, `${where}: a follow-up step needs afterHours`)
  const channels = y.enumList(y.get(sn, 'channels'), `${where}: channels`, CHANNELS)
  if (channels.length === 0) y.fail(sn, `${where}: needs at least one channel`)
  const templates = new Map<Locale, Map<Channel, Template>>()
  const tNode = y.get(sn, 'templates')
  for (const [locale, keyNode, byChannel] of y.entries(tNode, `${where}: templates`)) {
    if (!(LOCALES as readonly string[]).includes(locale)) y.fail(keyNode, `${where}: unknown locale "${locale}" (known: ${LOCALES.join(', ')})`)
    const m = new Map<Channel, Template>()
    for (const [ch, chKey, tn] of y.entries(byChannel, `${where}: templates.${locale}`)) {
      if (!(CHANNELS as readonly string[]).includes(ch)) y.fail(chKey, `${where}: unknown channel "${ch}"`)
      if (!channels.includes(ch as Channel)) y.fail(chKey, `${where}: a ${ch} template, but ${ch} is not in the step's channels`)
      m.set(ch as Channel, parseTemplate(y, tn, `${where}, ${locale} ${ch}`, ch as Channel, vars))
    }
    for (const ch of channels) if (!m.has(ch)) y.fail(byChannel, `${where}: templates.${locale} has no ${ch} template`)
    templates.set(locale as Locale, m)
  }
  if (templates.size === 0) y.fail(tNode ?? sn, `${where}: needs templates`)
  return { step, afterHours, channels, channelIndexes: channels.map((c) => CHANNELS.indexOf(c)), templates }
}

const VARIABLE = /\{([a-zA-Z]+)\}/g

/** Renders a template's variables; unknown names are left as they are (rejected at load). */
export function render (text: string, vars: Record<string, string>): string {
  return text.replace(VARIABLE, (m, name: string) => vars[name] ?? m)
}

function parseTemplate (y: YamlDoc, tn: Node, where: string, ch: Channel, vars: Record<string, string>): Template {
  const allowed = ch === 'SMS' ? ['body', 'keyword'] : ch === 'PUSH' ? ['title', 'body'] : ch === 'EMAIL' ? ['subject', 'body'] : ['body']
  y.onlyKeys(tn, where, allowed)
  const check = (node: Node | undefined, field: string): string => {
    const text = y.str(node, `${where}: ${field}`)
    if (text.trim() === '') y.fail(node, `${where}: ${field} is empty`)
    for (const m of text.matchAll(VARIABLE)) {
      if (!(TEMPLATE_VARIABLES as readonly string[]).includes(m[1])) y.fail(node, `${where}: unknown variable {${m[1]}} (known: ${TEMPLATE_VARIABLES.map((v) => `{${v}}`).join(' ')})`)
    }
    if (text.includes('{hook}') && vars.hook === '') y.fail(node, `${where}: {hook} used, but the plan's hook has no value`)
    return text
  }
  const bodyNode = y.get(tn, 'body')
  const body = check(bodyNode, 'body')
  const widest = textLength(render(body, vars))
  let title: string | null = null
  if (ch === 'SMS') {
    // Channel rule: no title, ≤ 70 characters with the link, the key words in the first 10.
    if (!body.includes('{link}')) y.fail(bodyNode, `${where}: an SMS body must carry {link}`)
    if (widest > LIMITS.smsBody) y.fail(bodyNode, `${where}: SMS body renders to ${widest} characters with the link; at most ${LIMITS.smsBody}`)
    const kwNode = y.get(tn, 'keyword')
    const kw = check(kwNode ?? y.fail(tn, `${where}: an SMS needs a keyword (shown in its first ${LIMITS.smsKeywordWithin} characters)`), 'keyword')
    const at = render(body, vars).indexOf(kw)
    if (at < 0 || textLength(render(body, vars).slice(0, at)) + textLength(kw) > LIMITS.smsKeywordWithin) y.fail(kwNode, `${where}: keyword "${kw}" must appear within the first ${LIMITS.smsKeywordWithin} characters of the body`)
  } else if (ch === 'PUSH') {
    const tNode = y.get(tn, 'title')
    title = check(tNode ?? y.fail(tn, `${where}: a push needs a title`), 'title')
    const tw = textLength(render(title, vars))
    if (tw > LIMITS.pushTitle) y.fail(tNode, `${where}: push title renders to ${tw} characters; at most ${LIMITS.pushTitle}`)
    if (widest > LIMITS.pushBody) y.fail(bodyNode, `${where}: push body renders to ${widest} characters; at most ${LIMITS.pushBody}`)
  } else if (ch === 'EMAIL') {
    const sNode = y.get(tn, 'subject')
    title = check(sNode ?? y.fail(tn, `${where}: an email needs a subject`), 'subject')
  }
  return { title, body }
}
